//! `opentelemetry/proto/metrics/v1/metrics.proto` and the metrics service's
//! request and response (`collector/metrics/v1/metrics_service.proto`).

use super::common::{InstrumentationScope, KeyValue};
use super::json::{f64_any, null_default, opt_f64_any, u64_any, vec_f64_any, vec_u64_any};
use super::resource::Resource;
use serde::Deserialize;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExportMetricsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsPartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(from = "MetricJson")]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(oneof = "metric::Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<metric::Data>,
}

/// The JSON spelling of [`Metric`]: its `data` oneof is whichever field is
/// present (see [`super::common::AnyValue`] for why not `serde(flatten)`).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MetricJson {
    #[serde(deserialize_with = "null_default")]
    name: String,
    #[serde(deserialize_with = "null_default")]
    description: String,
    #[serde(deserialize_with = "null_default")]
    unit: String,
    gauge: Option<Gauge>,
    sum: Option<Sum>,
    histogram: Option<Histogram>,
    exponential_histogram: Option<ExponentialHistogram>,
    summary: Option<Summary>,
}

impl From<MetricJson> for Metric {
    fn from(j: MetricJson) -> Metric {
        use metric::Data;
        let data = j
            .gauge
            .map(Data::Gauge)
            .or(j.sum.map(Data::Sum))
            .or(j.histogram.map(Data::Histogram))
            .or(j.exponential_histogram.map(Data::ExponentialHistogram))
            .or(j.summary.map(Data::Summary));
        Metric { name: j.name, description: j.description, unit: j.unit, data }
    }
}

pub mod metric {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "5")]
        Gauge(super::Gauge),
        #[prost(message, tag = "7")]
        Sum(super::Sum),
        #[prost(message, tag = "9")]
        Histogram(super::Histogram),
        #[prost(message, tag = "10")]
        ExponentialHistogram(super::ExponentialHistogram),
        #[prost(message, tag = "11")]
        Summary(super::Summary),
    }
}

/// `AggregationTemporality`: 0 is invalid, 1 delta, 2 cumulative.
pub mod temporality {
    pub const UNSPECIFIED: i32 = 0;
    pub const DELTA: i32 = 1;
    pub const CUMULATIVE: i32 = 2;
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub data_points: Vec<NumberDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub data_points: Vec<NumberDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    #[serde(deserialize_with = "null_default")]
    pub is_monotonic: bool,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExponentialHistogram {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub data_points: Vec<SummaryDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(from = "NumberDataPointJson")]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(oneof = "number_data_point::Value", tags = "4, 6")]
    pub value: Option<number_data_point::Value>,
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// The JSON spelling of [`NumberDataPoint`], whose value is a oneof.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct NumberDataPointJson {
    #[serde(deserialize_with = "null_default")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "u64_any")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "u64_any")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "opt_f64_any")]
    as_double: Option<f64>,
    #[serde(deserialize_with = "super::json::opt_i64_any")]
    as_int: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    flags: u32,
}

impl From<NumberDataPointJson> for NumberDataPoint {
    fn from(j: NumberDataPointJson) -> NumberDataPoint {
        use number_data_point::Value;
        NumberDataPoint {
            attributes: j.attributes,
            start_time_unix_nano: j.start_time_unix_nano,
            time_unix_nano: j.time_unix_nano,
            value: j.as_double.map(Value::AsDouble).or(j.as_int.map(Value::AsInt)),
            flags: j.flags,
        }
    }
}

pub mod number_data_point {
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(double, tag = "4")]
        AsDouble(f64),
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    #[serde(deserialize_with = "null_default")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    #[serde(deserialize_with = "u64_any")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    #[serde(deserialize_with = "u64_any")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "u64_any")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    #[serde(deserialize_with = "vec_u64_any")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    #[serde(deserialize_with = "vec_f64_any")]
    pub explicit_bounds: Vec<f64>,
    #[prost(uint32, tag = "10")]
    #[serde(deserialize_with = "null_default")]
    pub flags: u32,
    #[prost(double, optional, tag = "11")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "12")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub max: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExponentialHistogramDataPoint {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    #[serde(deserialize_with = "u64_any")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    #[serde(deserialize_with = "u64_any")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "u64_any")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub sum: Option<f64>,
    #[prost(sint32, tag = "6")]
    #[serde(deserialize_with = "null_default")]
    pub scale: i32,
    #[prost(fixed64, tag = "7")]
    #[serde(deserialize_with = "u64_any")]
    pub zero_count: u64,
    #[prost(message, optional, tag = "8")]
    pub positive: Option<exponential_histogram_data_point::Buckets>,
    #[prost(message, optional, tag = "9")]
    pub negative: Option<exponential_histogram_data_point::Buckets>,
    #[prost(uint32, tag = "10")]
    #[serde(deserialize_with = "null_default")]
    pub flags: u32,
    #[prost(double, optional, tag = "12")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "13")]
    #[serde(deserialize_with = "opt_f64_any")]
    pub max: Option<f64>,
    #[prost(double, tag = "14")]
    #[serde(deserialize_with = "f64_any")]
    pub zero_threshold: f64,
}

pub mod exponential_histogram_data_point {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Buckets {
        #[prost(sint32, tag = "1")]
        #[serde(deserialize_with = "null_default")]
        pub offset: i32,
        #[prost(uint64, repeated, tag = "2")]
        #[serde(deserialize_with = "vec_u64_any")]
        pub bucket_counts: Vec<u64>,
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SummaryDataPoint {
    #[prost(message, repeated, tag = "7")]
    #[serde(deserialize_with = "null_default")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    #[serde(deserialize_with = "u64_any")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    #[serde(deserialize_with = "u64_any")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "u64_any")]
    pub count: u64,
    #[prost(double, tag = "5")]
    #[serde(deserialize_with = "f64_any")]
    pub sum: f64,
    #[prost(message, repeated, tag = "6")]
    #[serde(deserialize_with = "null_default")]
    pub quantile_values: Vec<summary_data_point::ValueAtQuantile>,
    #[prost(uint32, tag = "8")]
    #[serde(deserialize_with = "null_default")]
    pub flags: u32,
}

pub mod summary_data_point {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ValueAtQuantile {
        #[prost(double, tag = "1")]
        #[serde(deserialize_with = "f64_any")]
        pub quantile: f64,
        #[prost(double, tag = "2")]
        #[serde(deserialize_with = "f64_any")]
        pub value: f64,
    }
}
