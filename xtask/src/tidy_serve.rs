//! The server translates, the simulation decides: each request handler in
//! `crates/amishare-serve/src/` makes at most one call into the simulation,
//! and none from inside a loop, so that no AWS behaviour is assembled out of
//! several simulation calls in the server.
//!
//! A call into the simulation is a method call on a value named `client`
//! (the caller's `SimClient`), other than its accessors. A helper function
//! (or method of `self`) that makes such a call counts as one where it is called, so a handler
//! cannot make a second call through one. A dispatcher (a `match action`
//! whose arms each pick a handler) may name many handlers, but makes no call
//! itself beside them.

use std::path::Path;

use crate::project_root;

/// The server's sources, relative to the repository root.
const SERVE_SRC: &str = "crates/amishare-serve/src";

/// `SimClient` methods that read the handle itself rather than call the
/// simulation.
const ACCESSORS: &[&str] = &["principal", "world", "dry_run", "clone"];

#[test]
fn server_handlers_make_at_most_one_simulation_call() {
    let violations = handler_violations(&project_root().join(SERVE_SRC));
    crate::tidy::report(
        "server handlers that call the simulation more than once (the simulation's AWS-shaped API takes the whole request in one call)",
        &violations,
    );
}

/// Every function of the server's sources that calls the simulation more than
/// once, or from a loop: `file:line fn name: why`.
fn handler_violations(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.path()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut violations = Vec::new();
    for path in files
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
    {
        let text = crate::tidy::read(path);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        violations.extend(file_violations(&name, &text));
    }
    violations
}

/// One function: its name, the line it starts on, and its body.
struct Function<'t> {
    name: &'t str,
    line: usize,
    body: String,
}

/// The violations of one source file.
fn file_violations(file: &str, text: &str) -> Vec<String> {
    let code = strip_comments_and_strings(text);
    let functions = functions(&code);
    let calling: Vec<&str> = functions
        .iter()
        .filter(|function| !client_calls(&function.body).is_empty())
        .map(|function| function.name)
        .collect();
    let mut violations = Vec::new();
    for function in &functions {
        let direct = client_calls(&function.body);
        // A dispatcher's arms are requests of their own, each calling one
        // handler, unless it calls the simulation itself too.
        let dispatcher = function.body.contains("match action");
        let through: Vec<&str> = calling
            .iter()
            .copied()
            .filter(|helper| *helper != function.name && calls_free_fn(&function.body, helper))
            .filter(|_| !dispatcher || !direct.is_empty())
            .collect();
        let total = direct.len() + through.len();
        if total > 1 {
            let mut made: Vec<String> =
                direct.iter().map(|call| format!("client.{call}")).collect();
            made.extend(through.iter().map(|helper| format!("{helper}(…)")));
            violations.push(format!(
                "{file}:{} fn {}: {total} simulation calls ({})",
                function.line,
                function.name,
                made.join(", ")
            ));
        }
        if loops(&function.body)
            .iter()
            .any(|block| !client_calls(block).is_empty())
        {
            violations.push(format!(
                "{file}:{} fn {}: a simulation call in a loop",
                function.line, function.name
            ));
        }
    }
    violations
}

/// The text with comments removed and string and char literals emptied,
/// keeping line breaks so that line numbers hold.
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(out.chars().last())
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some('\n') => out.push('\n'),
                    Some(_) => {}
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // A char literal such as '{'; lifetimes have no closing quote.
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            while i < chars.len() && !(chars[i] == '\'' && i > 0 && chars[i - 1] != '\\') {
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Every `fn` with a body, nested ones included.
fn functions(code: &str) -> Vec<Function<'_>> {
    let mut functions = Vec::new();
    let bytes = code.as_bytes();
    let mut search = 0;
    while let Some(found) = code[search..].find("fn ") {
        let start = search + found;
        search = start + 3;
        if start > 0 && ident_char(code[..start].chars().last()) {
            continue;
        }
        let rest = &code[start + 3..];
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` after the signature, unless a `;`
        // ends a declaration without one.
        let after = start + 3 + name_len;
        let Some(open) = code[after..].find(['{', ';']).map(|at| after + at) else {
            break;
        };
        if bytes[open] == b';' {
            continue;
        }
        let Some(close) = matching_brace(code, open) else {
            break;
        };
        functions.push(Function {
            name,
            line: code[..start].matches('\n').count() + 1,
            body: code[open..=close].to_owned(),
        });
    }
    functions
}

/// The index of the bracket closing the one (`{` or `(`) at `open`.
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let (opening, closing) = match code[open..].chars().next()? {
        '(' => ('(', ')'),
        _ => ('{', '}'),
    };
    let mut depth = 0usize;
    for (at, c) in code[open..].char_indices() {
        if c == opening {
            depth += 1;
        } else if c == closing {
            depth -= 1;
            if depth == 0 {
                return Some(open + at);
            }
        }
    }
    None
}

/// The methods called on `client` in `body`, accessors left out.
fn client_calls(body: &str) -> Vec<String> {
    let squeezed: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let mut calls = Vec::new();
    let mut search = 0;
    while let Some(found) = squeezed[search..].find("client.") {
        let start = search + found;
        search = start + "client.".len();
        if ident_char(squeezed[..start].chars().last()) {
            continue;
        }
        let rest = &squeezed[search..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let method = &rest[..len];
        let is_call = rest[len..].starts_with('(') || rest[len..].starts_with("::<");
        if is_call && !ACCESSORS.contains(&method) {
            calls.push(method.to_owned());
        }
    }
    calls
}

/// Whether `body` calls the free function (or path) ending in `name`, or
/// the method `self.name`.
fn calls_free_fn(body: &str, name: &str) -> bool {
    let squeezed: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.contains(&format!("self.{name}(")) {
        return true;
    }
    let pattern = format!("{name}(");
    body.match_indices(&pattern).any(|(at, _)| {
        let before = body[..at].chars().last();
        !ident_char(before) && before != Some('.')
    })
}

/// The blocks of the `for`, `while` and `loop` loops in `body`, and the
/// bodies of closures passed to iterator adapters that run once per item.
fn loops(body: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    for keyword in ["for ", "while ", "loop "] {
        for (at, _) in body.match_indices(keyword) {
            if ident_char(body[..at].chars().last()) {
                continue;
            }
            let Some(open) = body[at..].find('{').map(|i| at + i) else {
                continue;
            };
            if let Some(close) = matching_brace(body, open) {
                blocks.push(&body[open..=close]);
            }
        }
    }
    for adapter in [
        ".map(",
        ".for_each(",
        ".filter_map(",
        ".flat_map(",
        ".then(",
    ] {
        for (at, _) in body.match_indices(adapter) {
            let open = at + adapter.len() - 1;
            if let Some(close) = matching_brace(body, open) {
                blocks.push(&body[open..=close]);
            }
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::file_violations;

    #[test]
    fn the_check_counts_calls_per_handler_through_helpers_and_loops() {
        for (what, source, expected) in [
            (
                "one call",
                "async fn a(&self) { let x = self.client.describe(r, &q).await?; print(x) }",
                0,
            ),
            (
                "two calls",
                "async fn a(&self) { self.client.describe(r).await?; self\n.client\n.terminate(r).await?; }",
                1,
            ),
            (
                "an accessor and a call",
                "async fn a(&self) { let me = self.client.principal(); self.client.describe(me).await?; }",
                0,
            ),
            (
                "a call in a loop",
                "async fn a(&self) { for _ in 0..n { self.client.run(r).await?; } }",
                1,
            ),
            (
                "a call through a helper",
                "async fn helper(client: &C) { client.describe(r).await } async fn a(client: &C) { helper(client).await; client.delete(r).await; }",
                1,
            ),
            (
                "a call through a method helper",
                "impl Call { async fn key(&self) { self.client.defaults().await } async fn run(&self) { let k = self\n.key().await; self.client.run(k).await; } }",
                1,
            ),
            (
                "calls named in comments and strings do not count",
                "async fn a(&self) { // self.client.one()\n let s = \"client.two()\"; self.client.three().await; }",
                0,
            ),
            (
                "a dispatcher picks one handler",
                "async fn a(client: &C) { client.a().await } async fn b(client: &C) { client.b().await } async fn handle(client: &C) { match action { \"A\" => a(client).await, _ => b(client).await } }",
                0,
            ),
            (
                "a dispatcher that calls beside its handlers",
                "async fn a(client: &C) { client.a().await } async fn handle(client: &C) { client.check().await; match action { _ => a(client).await } }",
                1,
            ),
        ] {
            let violations = file_violations("x.rs", source);
            assert_eq!(violations.len(), expected, "{what}: {violations:?}");
        }
    }
}
