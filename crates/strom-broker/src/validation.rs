//! Broker-side schema validation, Confluent Server's `confluent.key.schema.validation`
//! and `confluent.value.schema.validation`: on a topic that asks for it, every produced
//! key or value must carry a schema id (magic byte 0, then the id) registered under the
//! subject the topic's strategy names, and with `strom.{key,value}.schema.validation.decode`
//! the payload must decode with that schema. The only place the broker decodes records,
//! and only for topics that ask. The check itself is the schema registry's, behind
//! [`RecordValidator`]: this crate knows no registry.

use crate::error::{BrokerError, Result};
use crate::topic_config::{SchemaRule, TopicLimits};

/// Which part of a record a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPart {
    Key,
    Value,
}

impl RecordPart {
    pub fn name(self) -> &'static str {
        match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
        }
    }
}

/// Checks one serialized key or value against the registry.
pub trait RecordValidator: Send + Sync {
    /// Why `bytes` does not conform to `rule` (None: it does).
    fn check(&self, topic: &str, part: RecordPart, rule: SchemaRule, bytes: &[u8]) -> Option<String>;
}

/// Validates every record of `batches` as the topic's limits ask: Ok, or INVALID_RECORD
/// with each failing record's index in its batch and why (nothing of the batches is
/// stored then). Null keys and values pass, as in Confluent Server.
pub(crate) fn validate(
    validator: Option<&dyn RecordValidator>,
    topic: &str,
    limits: &TopicLimits,
    batches: &[u8],
) -> Result<()> {
    if limits.key_schema.is_none() && limits.value_schema.is_none() {
        return Ok(());
    }
    let Some(validator) = validator else {
        return Err(BrokerError::InvalidRecord(format!(
            "topic {topic} validates schemas, but this node serves no schema registry"
        )));
    };
    let mut errors = Vec::new();
    for (header, batch) in strom_log::BatchIter::new(batches) {
        if header.is_control() {
            continue;
        }
        let (_, records) = strom_log::record::decode_batch(batch)?;
        for (index, record) in records.iter().enumerate() {
            let parts = [
                (RecordPart::Key, limits.key_schema, record.key.as_deref()),
                (RecordPart::Value, limits.value_schema, record.value.as_deref()),
            ];
            for (part, rule, bytes) in parts {
                let (Some(rule), Some(bytes)) = (rule, bytes) else {
                    continue;
                };
                if let Some(why) = validator.check(topic, part, rule, bytes) {
                    errors.push((index as i32, why));
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BrokerError::InvalidRecords(errors))
    }
}
