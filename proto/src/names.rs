//! How OpenTelemetry names are exposed to Prometheus clients.

/// The Prometheus spelling of an OpenTelemetry metric or label name: every
/// character outside `[a-zA-Z0-9_:]` becomes `_` (`http.server.duration` →
/// `http_server_duration`, `service.name` → `service_name`). No unit suffix is
/// added.
pub fn prom_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_and_other_punctuation_become_underscores() {
        assert_eq!(prom_name("http.server.duration"), "http_server_duration");
        assert_eq!(prom_name("service.name"), "service_name");
        assert_eq!(prom_name("a-b/c:d_e9"), "a_b_c:d_e9");
    }
}
