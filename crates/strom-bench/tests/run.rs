//! A short real run against the Strom binary (`STROM_BIN`, or `target/release/strom`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use strom_bench::{BenchArgs, BenchResult};

/// A broker process on a free port with its own data directory, killed on drop.
struct Broker {
    child: Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let path = std::env::var_os("STROM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/strom"));
    assert!(
        path.exists(),
        "{} does not exist: build the release binary first or set STROM_BIN",
        path.display()
    );
    path
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port");
    let data = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(data.path().join("broker.log")).expect("log file");
    let child = Command::new(binary())
        .arg("serve")
        // Many brokers at once here: none serves the schema registry (it would want 8081).
        .env("STROM_SCHEMA_REGISTRY_LISTENERS", "")
        .arg("--set")
        .arg(format!("listeners=PLAINTEXT://{address}"))
        .arg("--set")
        .arg(format!("log.dirs={}", data.path().join("data").display()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn strom");
    let mut broker = Broker {
        child,
        address,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker.address).is_err() {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!("strom exited with {status}");
        }
        assert!(Instant::now() < deadline, "strom did not listen on {}", broker.address);
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

#[derive(Debug, Parser)]
struct BenchCommand {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(list: &[&str]) -> BenchArgs {
    BenchCommand::try_parse_from(std::iter::once("bench").chain(list.iter().copied()))
        .expect("arguments parse")
        .bench
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_run_writes_json_and_html() {
    let broker = start_broker();
    let out = tempfile::tempdir().expect("temp dir");
    let json = out.path().join("result.json");
    let report = out.path().join("report");
    let bench = args(&[
        "e2e",
        "--records",
        "3000",
        "--rate",
        "5000",
        "--message-size",
        "64..256",
        "--partitions",
        "2",
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--report",
        report.to_str().expect("utf-8 path"),
        "--assert",
        "records==3000",
        "--assert",
        "consumed_records>=3000",
        "--assert",
        "errors==0",
    ]);
    let passed = strom_bench::run(&broker.address, bench).await.expect("bench runs");
    assert!(passed, "assertions hold");

    let result: BenchResult =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json parses");
    assert_eq!(result.summary.records, 3000);
    assert_eq!(result.summary.produce_latency.count, 3000);
    assert!(result.summary.e2e_latency.count >= 3000);
    assert!(!result.series.is_empty());
    assert!(!result.e2e_distribution.is_empty());

    let html = std::fs::read_to_string(report.join("report.html")).expect("html written");
    assert!(html.contains("<svg"));
    assert!(!html.contains("<script"));
    let copy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("result.json")).expect("report json"))
            .expect("parses");
    assert_eq!(copy["summary"]["records"], 3000);

    // A failing assertion makes the run return false.
    let bench = args(&[
        "produce",
        "--records",
        "500",
        "--no-progress",
        "--assert",
        "records>500",
    ]);
    let passed = strom_bench::run(&broker.address, bench).await.expect("bench runs");
    assert!(!passed, "records>500 does not hold for 500 records");
}
