//! `strom schema`: the Schema Registry's REST API from the command line (Strom's or any
//! Confluent-compatible registry): register, get, list, versions, check, delete, config
//! and mode. Schemas are read from files (`-` for standard input).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use super::{print_table, Common, Output};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    /// The registry's URL.
    #[arg(long, global = true, env = "STROM_REGISTRY", default_value = "http://127.0.0.1:8081")]
    registry: String,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// Register a schema under a subject; prints its id.
    Register {
        subject: String,
        /// The schema file (`-`: standard input).
        file: PathBuf,
        /// AVRO, JSON or PROTOBUF.
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
        /// A reference: NAME=SUBJECT:VERSION (repeatable).
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
    },
    /// Show a subject's version (default: latest), or a schema by id.
    Get {
        subject: Option<String>,
        #[arg(long, default_value = "latest")]
        version: String,
        /// A schema by its global id instead.
        #[arg(long, conflicts_with = "subject")]
        id: Option<i32>,
    },
    /// List subjects.
    List {
        /// Soft-deleted subjects too.
        #[arg(long)]
        deleted: bool,
    },
    /// List a subject's versions.
    Versions {
        subject: String,
        #[arg(long)]
        deleted: bool,
    },
    /// Check a schema against a subject's versions (exit status 1 if incompatible).
    Check {
        subject: String,
        file: PathBuf,
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
        /// One version to check against (default: what registering would check).
        #[arg(long)]
        version: Option<String>,
    },
    /// Delete a subject, or one version (soft; --permanent after a soft delete).
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Show or set the compatibility level (of a subject, or the registry's).
    Config {
        subject: Option<String>,
        /// NONE, BACKWARD, FORWARD, FULL, or a _TRANSITIVE form.
        #[arg(long)]
        set: Option<String>,
    },
    /// Show or set the mode (READWRITE, READONLY, IMPORT) of a subject or the registry.
    Mode {
        subject: Option<String>,
        #[arg(long)]
        set: Option<String>,
        /// IMPORT on a registry or subject that is not empty.
        #[arg(long)]
        force: bool,
    },
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// One call; the JSON answer, or the registry's error as the command's.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Accept", CONTENT_TYPE).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Accept", CONTENT_TYPE).call(),
            (method, body) => {
                let request = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                request
                    .header("Content-Type", CONTENT_TYPE)
                    .send(body.unwrap_or(Value::Null).to_string())
            }
        };
        let mut response = response.with_context(|| format!("cannot reach the schema registry at {}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .context("reading the registry's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 300 {
            match (value.get("error_code"), value.get("message").and_then(Value::as_str)) {
                (Some(code), Some(message)) => bail!("{message} (error {code})"),
                _ => bail!("the registry answered {status}: {value}"),
            }
        }
        Ok(value)
    }
}

fn read_schema(file: &PathBuf) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

fn parse_reference(text: &str) -> Result<Value> {
    let parsed = text.split_once('=').and_then(|(name, rest)| {
        let (subject, version) = rest.rsplit_once(':')?;
        Some((name, subject, version.parse::<i32>().ok()?))
    });
    let Some((name, subject, version)) = parsed else {
        bail!("--reference {text:?}: expected NAME=SUBJECT:VERSION");
    };
    Ok(json!({"name": name, "subject": subject, "version": version}))
}

fn schema_body(file: &PathBuf, schema_type: &str, references: &[String]) -> Result<Value> {
    let mut body = json!({"schema": read_schema(file)?, "schemaType": schema_type.to_ascii_uppercase()});
    if !references.is_empty() {
        body["references"] = Value::Array(references.iter().map(|r| parse_reference(r)).collect::<Result<_>>()?);
    }
    Ok(body)
}

/// Path segments are percent-encoded (subjects may hold `/`, `:` or spaces).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn print(common: &Common, value: &Value, table: impl FnOnce(&Value) -> Result<()>) -> Result<()> {
    match common.output {
        Output::Json => {
            outln!("{value}")?;
            Ok(())
        }
        Output::Table => table(value),
    }
}

pub fn run(common: &Common, args: SchemaArgs) -> Result<()> {
    let client = Client::new(&args.registry);
    match args.command {
        SchemaCommand::Register {
            subject,
            file,
            schema_type,
            references,
        } => {
            let body = schema_body(&file, &schema_type, &references)?;
            let answer = client.call("POST", &format!("/subjects/{}/versions", segment(&subject)), Some(body))?;
            print(common, &answer, |a| outln!("{}", a["id"]))
        }
        SchemaCommand::Get { subject, version, id } => {
            let answer = match (id, subject) {
                (Some(id), _) => client.call("GET", &format!("/schemas/ids/{id}"), None)?,
                (None, Some(subject)) => client.call(
                    "GET",
                    &format!("/subjects/{}/versions/{}", segment(&subject), segment(&version)),
                    None,
                )?,
                (None, None) => bail!("name a subject, or --id"),
            };
            print(common, &answer, |a| {
                if let Some(version) = a.get("version") {
                    outln!(
                        "subject {}  version {}  id {}",
                        a["subject"].as_str().unwrap_or(""),
                        version,
                        a["id"]
                    )?;
                }
                outln!("{}", a["schema"].as_str().unwrap_or_default())
            })
        }
        SchemaCommand::List { deleted } => {
            let answer = client.call("GET", &format!("/subjects?deleted={deleted}"), None)?;
            print(common, &answer, |a| {
                for subject in a.as_array().into_iter().flatten() {
                    outln!("{}", subject.as_str().unwrap_or_default())?;
                }
                Ok(())
            })
        }
        SchemaCommand::Versions { subject, deleted } => {
            let answer = client.call(
                "GET",
                &format!("/subjects/{}/versions?deleted={deleted}", segment(&subject)),
                None,
            )?;
            print(common, &answer, |a| {
                let rows: Vec<Vec<String>> = a
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| vec![v.to_string()])
                    .collect();
                print_table(&["VERSION"], &rows)
            })
        }
        SchemaCommand::Check {
            subject,
            file,
            schema_type,
            version,
        } => {
            let body = schema_body(&file, &schema_type, &[])?;
            let path = match version {
                Some(v) => format!(
                    "/compatibility/subjects/{}/versions/{}?verbose=true",
                    segment(&subject),
                    segment(&v)
                ),
                None => format!("/compatibility/subjects/{}/versions?verbose=true", segment(&subject)),
            };
            let answer = client.call("POST", &path, Some(body))?;
            let compatible = answer["is_compatible"].as_bool().unwrap_or(false);
            print(common, &answer, |a| {
                outln!("{}", if compatible { "compatible" } else { "incompatible" })?;
                for message in a["messages"].as_array().into_iter().flatten() {
                    outln!("  {}", message.as_str().unwrap_or_default())?;
                }
                Ok(())
            })?;
            if !compatible {
                bail!("the schema is not compatible with subject {subject}");
            }
            Ok(())
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let path = match version {
                Some(v) => format!(
                    "/subjects/{}/versions/{}?permanent={permanent}",
                    segment(&subject),
                    segment(&v)
                ),
                None => format!("/subjects/{}?permanent={permanent}", segment(&subject)),
            };
            let answer = client.call("DELETE", &path, None)?;
            print(common, &answer, |a| outln!("deleted {a}"))
        }
        SchemaCommand::Config { subject, set } => {
            let path = match &subject {
                Some(s) => format!("/config/{}", segment(s)),
                None => "/config".to_string(),
            };
            let answer = match set {
                Some(level) => client.call("PUT", &path, Some(json!({"compatibility": level})))?,
                None => client.call("GET", &format!("{path}?defaultToGlobal=true"), None)?,
            };
            print(common, &answer, |a| {
                let level = a.get("compatibilityLevel").or_else(|| a.get("compatibility"));
                outln!("{}", level.and_then(Value::as_str).unwrap_or_default())
            })
        }
        SchemaCommand::Mode { subject, set, force } => {
            let path = match &subject {
                Some(s) => format!("/mode/{}", segment(s)),
                None => "/mode".to_string(),
            };
            let answer = match set {
                Some(mode) => client.call("PUT", &format!("{path}?force={force}"), Some(json!({"mode": mode})))?,
                None => client.call("GET", &format!("{path}?defaultToGlobal=true"), None)?,
            };
            print(common, &answer, |a| {
                outln!("{}", a["mode"].as_str().unwrap_or_default())
            })
        }
    }
}
