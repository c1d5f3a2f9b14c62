//! The data contracts between the pipeline's stages.
//!
//! - [`otlp`]: the OTLP messages ingest decodes, from protobuf or OTLP JSON;
//! - [`point`]: the one normalized [`point::Point`] every input becomes;
//! - [`normalize`]: OTLP → points;
//! - [`archive`]: the versioned, gzip-compressed batch format ingest writes to R2
//!   and rollup reads back;
//! - [`aggregate`]: the mergeable per-bucket aggregate (count, sum, min, max and
//!   an HdrHistogram) rollup stores in D1 and dashboard-api reads;
//! - [`retention`]: the stored resolutions and how long each is kept.
//!
//! Everything here is plain data and pure functions: no bindings, no HTTP.

pub mod aggregate;
pub mod archive;
#[cfg(feature = "d1")]
pub mod d1;
pub mod decode;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod hash;
pub mod heap;
pub mod keys;
pub mod names;
pub mod normalize;
pub mod otlp;
pub mod point;
pub mod retention;
pub mod sum;
pub mod vars;
