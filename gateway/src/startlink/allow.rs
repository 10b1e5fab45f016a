//! The `ApiUrl` allow-list: a start link's ApiUrl is honoured only when its scheme, host, port
//! and path equal those of a configured entry (host case and a trailing `/` aside). Anything a
//! parser could read two ways (user names, queries, fragments) is never allowed.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

impl Allowed {
    pub fn parse(text: &str) -> Option<Self> {
        let url = Url::parse(text).ok()?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        if !plain {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default(),
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Whether `api_url` is on `list`.
pub fn allowed(list: &[String], api_url: &str) -> bool {
    let Some(wanted) = Allowed::parse(api_url) else {
        return false;
    };
    list.iter()
        .filter_map(|entry| Allowed::parse(entry))
        .any(|entry| entry == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list() -> Vec<String> {
        vec![
            "https://iam.example.test".into(),
            "http://127.0.0.1:9100/api/".into(),
        ]
    }

    #[test]
    fn only_listed_urls_pass() {
        for ok in [
            "https://iam.example.test",
            "https://IAM.example.test/",
            "https://iam.example.test:443",
            "http://127.0.0.1:9100/api",
        ] {
            assert!(allowed(&list(), ok), "{ok}");
        }
        for refused in [
            "https://iam.example.test.evil.test",
            "https://evil.test/iam.example.test",
            "https://iam.example.test@evil.test",
            "https://user@iam.example.test",
            "http://iam.example.test",
            "https://iam.example.test:8443",
            "https://iam.example.test/other",
            "https://iam.example.test?x=1",
            "https://iam.example.test#x",
            "http://127.0.0.1:9101/api",
            "http://127.0.0.1:9100/api/more",
            "",
            "iam.example.test",
        ] {
            assert!(!allowed(&list(), refused), "{refused}");
        }
        assert!(!allowed(&[], "https://iam.example.test"));
    }

    proptest! {
        /// Whatever the text, a URL is allowed only if it denotes the same origin and path as an
        /// entry.
        #[test]
        fn arbitrary_text_never_passes_by_accident(text in "[ -~]{0,60}") {
            if allowed(&list(), &text) {
                let parsed = Allowed::parse(&text).unwrap();
                prop_assert!(list().iter().any(|e| Allowed::parse(e).as_ref() == Some(&parsed)));
                prop_assert!(parsed.host == "iam.example.test" || parsed.host == "127.0.0.1");
            }
        }
    }
}
