//! Account names and passwords. A name comes from a pattern (`{login}`, `{rand}`) and must fit
//! Active Directory's sAMAccountName: at most 20 characters, none of `"/\[]:;|=,+*?<>@` or
//! control characters, not only dots and spaces. The login part is cut (never the random part)
//! so that every name keeps its entropy.

use rand::Rng as _;

/// sAMAccountName's limit (the pre-Windows 2000 logon name).
pub const MAX_NAME: usize = 20;
const FORBIDDEN: &[char] = &[
    '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@', ' ',
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    template: String,
    rand_len: usize,
}

/// A pattern like `jit-{login}-{rand}`: literal text, `{login}` and `{rand}` at most once each
/// and at least one of them. Without `{rand}` a person always gets the same name (and a second
/// account for them at the same time is a name collision).
pub fn parse_pattern(text: &str, rand_len: usize) -> Result<Pattern, String> {
    let (rands, logins) = (
        text.matches("{rand}").count(),
        text.matches("{login}").count(),
    );
    if rands > 1 || logins > 1 || rands + logins == 0 {
        return Err("name_pattern must hold {login} or {rand} (or both), each at most once".into());
    }
    let rand_len = if rands == 0 { 0 } else { rand_len };
    let literal = text.replace("{rand}", "").replace("{login}", "");
    if literal
        .chars()
        .any(|c| FORBIDDEN.contains(&c) || c.is_control() || c == '{' || c == '}')
    {
        return Err(format!(
            "name_pattern has characters AD does not allow: {text:?}"
        ));
    }
    if (rands == 1 && !(4..=12).contains(&rand_len))
        || literal.chars().count() + rand_len > MAX_NAME - 1
    {
        return Err(format!(
            "name_pattern and random_chars (4 to 12) must leave room for a login within {MAX_NAME} characters"
        ));
    }
    Ok(Pattern {
        template: text.to_owned(),
        rand_len,
    })
}

/// Keeps what AD accepts in a name: ASCII letters, digits, `-`, `_`, `.`; lower case.
fn clean_login(login: &str) -> String {
    login
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.').then_some(c)
        })
        .collect()
}

fn random_part(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Pattern {
    /// Whether names have a random part (a taken name can be retried with another).
    pub fn is_random(&self) -> bool {
        self.template.contains("{rand}")
    }

    /// A fresh name for `login`.
    pub fn render(&self, login: &str) -> String {
        self.render_with(login, &random_part(self.rand_len))
    }

    fn render_with(&self, login: &str, random: &str) -> String {
        let fixed = self.template.replace("{rand}", "").replace("{login}", "");
        let room = MAX_NAME.saturating_sub(fixed.chars().count() + random.chars().count());
        let login: String = clean_login(login).chars().take(room).collect();
        self.template
            .replace("{login}", &login)
            .replace("{rand}", random)
    }
}

/// A password AD's complexity rules accept: `len` characters with upper and lower case letters,
/// digits and symbols.
pub fn password(len: usize) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-.:=?@^_~";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    while chars.len() < len.max(8) {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    // Shuffle so the classes are not in a fixed place.
    for i in (1..chars.len()).rev() {
        let j = rng.random_range(0..=i);
        chars.swap(i, j);
    }
    chars.into_iter().map(char::from).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_render_within_ads_limit() {
        let p = parse_pattern("jit-{login}-{rand}", 6).unwrap();
        assert_eq!(p.render_with("Bob", "abc234"), "jit-bob-abc234");
        // 20 characters at most: the login is cut, the random part never.
        assert_eq!(
            p.render_with("Alice.Smith", "abc234"),
            "jit-alice.smi-abc234"
        );
        assert_eq!(p.render_with("ä ö/x\\y", "abc234"), "jit-xy-abc234");
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(
            parse_pattern("jit-{login}", 6).is_ok(),
            "a fixed name per person"
        );
        assert!(parse_pattern("jit-", 6).is_err());
        assert!(parse_pattern("{rand}{rand}", 6).is_err());
        assert!(parse_pattern("jit/{rand}", 6).is_err());
        assert!(parse_pattern("averyveryverylong-{rand}", 6).is_err());
    }

    proptest! {
        /// Any login gives a name AD accepts, with the random part whole.
        #[test]
        fn any_login_gives_a_valid_name(login in "\\PC{0,40}") {
            let p = parse_pattern("jit-{login}-{rand}", 6).unwrap();
            let name = p.render_with(&login, "abc234");
            prop_assert!(name.chars().count() <= MAX_NAME, "{name}");
            prop_assert!(name.contains("abc234"));
            prop_assert!(!name.chars().any(|c| FORBIDDEN.contains(&c) || c.is_control()));
        }

        #[test]
        fn passwords_have_every_class(len in 8usize..64) {
            let p = password(len);
            prop_assert_eq!(p.len(), len);
            prop_assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            prop_assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            prop_assert!(p.chars().any(|c| c.is_ascii_digit()));
            prop_assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
    }
}
