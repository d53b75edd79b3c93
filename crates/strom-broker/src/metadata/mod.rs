//! The metadata: records ([`record`]), the image they build ([`image`]) and where they
//! are kept ([`store`]). The broker changes its topic catalog only by committing
//! records: checked against the image, made durable by the store, then applied.

pub mod image;
pub mod record;
pub mod store;

pub use image::MetadataImage;
pub use record::{MetadataRecord, TopicRecord};
pub use store::{MetadataStore, TopicsJsonStore};
