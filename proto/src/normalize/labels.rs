use crate::otlp::common::KeyValue;
use crate::point::Label;

/// Labels from resource and point attributes. Later layers win on duplicate
/// keys (point over resource; within one list, the last occurrence), and the
/// result is sorted by key so that equal label sets compare equal.
pub fn labels_from(layers: &[&[KeyValue]]) -> Vec<Label> {
    let mut labels: Vec<Label> = Vec::new();
    for layer in layers {
        for kv in *layer {
            let value = kv.value.as_ref().map(|v| v.to_label()).unwrap_or_default();
            match labels.iter_mut().find(|l| l.key == kv.key) {
                Some(existing) => existing.value = value,
                None => labels.push(Label { key: kv.key.clone(), value }),
            }
        }
    }
    labels.sort_by(|a, b| a.key.cmp(&b.key));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::{any_value::Value, AnyValue};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
        }
    }

    #[test]
    fn point_attributes_override_resource_and_are_sorted() {
        let resource = [kv("service.name", "api"), kv("host", "a")];
        let point = [kv("route", "/x"), kv("host", "b"), kv("route", "/y")];
        let labels = labels_from(&[&resource, &point]);
        let pairs: Vec<_> = labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect();
        assert_eq!(pairs, [("host", "b"), ("route", "/y"), ("service.name", "api")]);
    }
}
