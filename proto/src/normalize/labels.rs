//! Attributes → labels, within limits.

use crate::otlp::common::KeyValue;
use crate::point::Label;

/// Most labels a point may carry (resource, scope and point attributes together).
pub const MAX_LABELS: usize = 64;
/// Longest label name, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest label value, in bytes; longer values are cut to this and reported.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Labels and how many values were cut to [`MAX_VALUE_BYTES`].
#[derive(Debug, Default, PartialEq)]
pub struct Labeled {
    pub labels: Vec<Label>,
    pub truncated: usize,
}

/// Labels from layers of attributes (resource, scope, point). Later layers win
/// on duplicate keys (point over resource; within one list, the last
/// occurrence), and the result is sorted by key so that equal label sets
/// compare equal. A point with too many labels, or an empty or overlong label
/// name, is rejected with the reason.
///
/// Work is bounded by the input: each attribute is one binary search among
/// at most [`MAX_LABELS`] sorted keys, and the first key beyond the limit
/// rejects the point at once (300,000 distinct attributes once cost 10^10
/// comparisons, with the limit checked only at the end).
pub fn labels_from(layers: &[&[KeyValue]]) -> Result<Labeled, String> {
    let mut out = Builder::default();
    for layer in layers {
        for kv in *layer {
            out.set(&kv.key, || kv.key.clone(), kv.value.as_ref().map(|v| v.to_label()).unwrap_or_default())?;
        }
    }
    Ok(out.finish())
}

/// One point's own labels, from its attributes (moved, not copied), to go
/// with the labels its scope shares (`shared`, from resource and scope
/// attributes, sorted). The same rules as [`labels_from`] over all layers,
/// the point's attributes last: the limit counts shared and own labels
/// together, and an own label overrides a shared one of the same key.
pub fn with_point(shared: &[Label], attrs: Vec<KeyValue>) -> Result<Labeled, String> {
    let mut out = Builder::default();
    for kv in attrs {
        let value = kv.value.map(|v| v.into_label()).unwrap_or_default();
        let key = kv.key;
        out.set(&key, || key.clone(), value)?;
    }
    let out = out.finish();
    let total = count(shared, &out.labels);
    if total > MAX_LABELS {
        return Err(format!("{total} attributes, more than the {MAX_LABELS} allowed"));
    }
    Ok(out)
}

/// Labels being collected: kept sorted by key as they arrive (a sorted
/// vector is the map here: at most [`MAX_LABELS`] entries, so a binary
/// search per attribute and an insert of at most 64 moves, without a tree's
/// allocations on every point).
#[derive(Default)]
struct Builder {
    labels: Vec<Label>,
    truncated: usize,
}

impl Builder {
    /// Sets `key` (owned by `owned()` only when new) to `value`, cut to
    /// [`MAX_VALUE_BYTES`]; fails on a bad key or the label beyond the limit.
    fn set(&mut self, key: &str, owned: impl FnOnce() -> String, mut value: String) -> Result<(), String> {
        check_key(key)?;
        self.truncated += cut(&mut value);
        match self.labels.binary_search_by(|l| l.key.as_str().cmp(key)) {
            Ok(i) => self.labels[i].value = value,
            Err(_) if self.labels.len() == MAX_LABELS => {
                return Err(format!("at least {} attributes, more than the {MAX_LABELS} allowed", MAX_LABELS + 1));
            }
            Err(i) => self.labels.insert(i, Label { key: owned(), value }),
        }
        Ok(())
    }

    fn finish(self) -> Labeled {
        Labeled { labels: self.labels, truncated: self.truncated }
    }
}

/// How many labels a point has: its own, and the shared ones it does not
/// override. Both lists sorted by key.
pub fn count(shared: &[Label], own: &[Label]) -> usize {
    own.len() + shared.iter().filter(|s| own.binary_search_by(|o| o.key.cmp(&s.key)).is_err()).count()
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("attribute with an empty key".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("attribute key longer than {MAX_KEY_BYTES} bytes"));
    }
    Ok(())
}

/// The longest prefix of `value` of at most [`MAX_VALUE_BYTES`] that ends
/// on a character boundary.
fn prefix(value: &str) -> &str {
    if value.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Cuts a value to [`MAX_VALUE_BYTES`]; 1 if it was cut.
fn cut(value: &mut String) -> usize {
    let end = prefix(value).len();
    if end == value.len() {
        return 0;
    }
    value.truncate(end);
    1
}

/// Labels given as plain pairs (for metrics ingest derives itself from
/// span names, services and severities), values cut to
/// [`MAX_VALUE_BYTES`] like those of attributes.
pub fn fixed(pairs: &[(&str, &str)]) -> Labeled {
    let mut out = Labeled::default();
    for (key, value) in pairs {
        let kept = prefix(value);
        out.truncated += usize::from(kept.len() < value.len());
        out.labels.push(Label { key: (*key).to_owned(), value: kept.to_owned() });
    }
    out.labels.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::{any_value::Value, AnyValue};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }) }
    }

    fn pairs(l: &Labeled) -> Vec<(&str, &str)> {
        l.labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect()
    }

    #[test]
    fn point_attributes_override_resource_and_are_sorted() {
        let resource = [kv("service.name", "api"), kv("host", "a")];
        let point = [kv("route", "/x"), kv("host", "b"), kv("route", "/y")];
        let l = labels_from(&[&resource, &point]).unwrap();
        assert_eq!(pairs(&l), [("host", "b"), ("route", "/y"), ("service.name", "api")]);
        assert_eq!(l.truncated, 0);
    }

    #[test]
    fn with_point_and_shared_labels_equal_labels_from_all_layers() {
        let resource = [kv("service.name", "api"), kv("host", "a")];
        let point = vec![kv("route", "/x"), kv("host", "b"), kv("long", &"x".repeat(2000)), kv("route", "/y")];
        let shared = labels_from(&[&resource]).unwrap();
        let own = with_point(&shared.labels, point.clone()).unwrap();
        let all = labels_from(&[&resource, &point]).unwrap();
        assert_eq!(crate::point::merge_labels(&shared.labels, &own.labels), all.labels);
        assert_eq!((own.truncated, count(&shared.labels, &own.labels)), (1, all.labels.len()));
        assert!(with_point(&shared.labels, vec![kv("", "v")]).is_err());
        // The limit counts shared and own labels together, overrides once.
        let shared: Vec<KeyValue> = (0..40).map(|i| kv(&format!("r{i}"), "v")).collect();
        let shared = labels_from(&[&shared]).unwrap().labels;
        let own = |n: usize| (0..n).map(|i| kv(&format!("p{i}"), "v")).chain([kv("r0", "w")]).collect::<Vec<_>>();
        assert!(with_point(&shared, own(24)).is_ok());
        assert!(with_point(&shared, own(25)).unwrap_err().contains("65 attributes"));
    }

    #[test]
    fn limits() {
        let long_value = [kv("k", &"é".repeat(600))];
        let l = labels_from(&[&long_value]).unwrap();
        assert_eq!(l.truncated, 1);
        assert!(l.labels[0].value.len() <= MAX_VALUE_BYTES);
        let long_key = [kv(&"k".repeat(MAX_KEY_BYTES + 1), "v")];
        assert!(labels_from(&[&long_key]).unwrap_err().contains("longer than 128"));
        let many: Vec<KeyValue> = (0..=MAX_LABELS).map(|i| kv(&format!("k{i}"), "v")).collect();
        assert!(labels_from(&[&many]).unwrap_err().contains("65 attributes"));
        assert!(labels_from(&[&[kv("", "v")]]).is_err());
        // 300,000 distinct attributes: rejected at the 65th, not after
        // comparing each with every one before it.
        let flood: Vec<KeyValue> = (0..300_000).map(|i| kv(&format!("k{i}"), "v")).collect();
        assert!(labels_from(&[&flood]).unwrap_err().contains("more than the 64 allowed"));
        assert!(with_point(&[], flood).unwrap_err().contains("more than the 64 allowed"));
        // Duplicates count once towards the limit.
        let dups: Vec<KeyValue> = (0..200).map(|_| kv("same", "v")).collect();
        assert_eq!(labels_from(&[&dups]).unwrap().labels.len(), 1);
    }
}
