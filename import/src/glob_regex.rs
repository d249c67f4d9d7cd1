//! Shell globs (Logstash's `exclude`, Flume's file names) as regexes (logpipe's `exclude_files`).

/// `*.gz` → `[^/]*\.gz`; `?` → `[^/]`; `[abc]` stays a class; `{a,b}` → `(?:a|b)`.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut in_class = false;
    let mut braces = 0;
    for c in glob.chars() {
        match c {
            '*' if !in_class => out.push_str("[^/]*"),
            '?' if !in_class => out.push_str("[^/]"),
            '[' if !in_class => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '{' if !in_class => {
                braces += 1;
                out.push_str("(?:");
            }
            '}' if !in_class && braces > 0 => {
                braces -= 1;
                out.push(')');
            }
            ',' if !in_class && braces > 0 => out.push('|'),
            c if in_class => out.push(c),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_to_regex;

    #[test]
    fn globs() {
        assert_eq!(glob_to_regex("*.gz"), r"[^/]*\.gz");
        assert_eq!(glob_to_regex("access.log.{1,2}"), r"access\.log\.(?:1|2)");
        assert_eq!(glob_to_regex("a?[0-9]"), r"a[^/][0-9]");
    }
}
