//! Repository invariants, checked as `#[test]`s so that `cargo test` enforces them.
//!
//! * `amishare-core` and `amishare-policy` do not depend on the AWS SDK
//!   (`aws-*` crates) nor on tokio; core may use tokio as a dev-dependency.
//! * Every Rust file under `crates/` and `xtask/` starts with a `//!` module doc.
//! * No test is disabled with the ignore attribute and none expects a panic:
//!   assert on the current behaviour (with a FIXME) or on the `Err` instead.
//! * `.rs`, `.toml` and `.md` files carry no trailing whitespace.
//! * Every citation of the behavioural spec (a section sign followed by a
//!   section number such as `A2.2` or `B13`) in `crates/`, `xtask/`,
//!   `docs/spec/`, `ARCHITECTURE.md` and `README.md` names a section that a
//!   heading of `docs/spec/*.md` has.
//! * Every section of `docs/spec/*.md` that marks a claim `[C]` (confirmed in
//!   AWS documentation) lists at least one `https` source.
//!
//! A test that needs git fails where git is not installed, unless
//! `AMISHARE_TIDY_WITHOUT_GIT` is set: then it says on the terminal that it
//! was skipped, and passes.
//!
//! Each failure lists every offending `path:line`, relative to the repository root.
//! The checks themselves are tested on small fixture trees in the system temp directory.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::project_root;

/// Which dependencies one workspace crate may not have.
struct DependencyRule {
    /// The crate's folder and package name under `crates/`.
    krate: &'static str,
    /// Whether tokio is allowed in the `[dev-dependencies]` tables.
    tokio_dev_dependency_allowed: bool,
}

/// The crates that must stay free of the AWS SDK and of the async runtime.
const DEPENDENCY_RULES: &[DependencyRule] = &[
    DependencyRule {
        krate: "amishare-core",
        tokio_dev_dependency_allowed: true,
    },
    DependencyRule {
        krate: "amishare-policy",
        tokio_dev_dependency_allowed: false,
    },
];

/// Attributes that must not appear in sources, without the closing bracket.
///
/// The strings are assembled with `concat!` so that this file does not contain them.
const FORBIDDEN_ATTRIBUTES: &[&str] = &[concat!("#[", "ignore"), concat!("#[", "should_panic")];

/// Extensions of the files checked for trailing whitespace.
const WHITESPACE_CHECKED_EXTENSIONS: &[&str] = &["rs", "toml", "md"];

/// Where the behavioural spec lives, relative to the repository root.
const SPEC_DIR: &str = "docs/spec";

/// The character that starts a spec citation, spelled as an escape so that
/// this file cites no section itself.
const SECTION_SIGN: char = '\u{a7}';

/// The marker of a claim confirmed in AWS documentation.
const CONFIRMED_MARKER: &str = "[C]";

/// Directories (relative to the root) whose text files may cite the spec.
const CITING_DIRS: &[&str] = &["crates", "xtask", SPEC_DIR];

/// Single files (relative to the root) that may cite the spec.
const CITING_FILES: &[&str] = &["ARCHITECTURE.md", "README.md"];

/// Extensions of the files searched for spec citations.
const CITING_EXTENSIONS: &[&str] = &["rs", "md", "toml"];

/// `amishare-core` and `amishare-policy` stay free of the AWS SDK and of tokio.
#[test]
fn core_crates_do_not_depend_on_the_aws_sdk_or_tokio() {
    report(
        "forbidden dependencies",
        &dependency_rule_violations(&project_root()),
    );
}

/// Every Rust file in the workspace explains itself in a `//!` module doc.
#[test]
fn every_rust_file_starts_with_a_module_doc() {
    report(
        "missing `//!` module docs",
        &module_doc_violations(&project_root()),
    );
}

/// Tests are never switched off and never pass by panicking.
#[test]
fn no_ignored_or_panic_expecting_tests() {
    report(
        "forbidden test attributes",
        &forbidden_attribute_violations(&project_root()),
    );
}

/// Source, manifest and Markdown files carry no trailing whitespace.
#[test]
fn no_trailing_whitespace() {
    report(
        "trailing whitespace",
        &trailing_whitespace_violations(&project_root()),
    );
}

/// A crate's public names are listed where they are re-exported, so a reader
/// (and a library user) sees what the root holds: no `pub use …::*`.
#[test]
fn no_glob_re_exports() {
    report(
        "glob re-exports",
        &glob_re_export_violations(&project_root()),
    );
}

/// Every spec citation points at a section the spec has.
#[test]
fn spec_citations_name_existing_sections() {
    report(
        "citations of sections the spec does not have",
        &spec_citation_violations(&project_root()),
    );
}

/// A confirmed claim in the spec always comes with its AWS source.
#[test]
fn confirmed_spec_sections_list_sources() {
    report(
        "spec sections with a confirmed claim and no https source",
        &spec_source_violations(&project_root()),
    );
}

/// Every example is run by CI (`cargo xtask ci`, which `.ci/run` runs), or
/// listed as one that acts on AWS and is only built; and `.ci/run` lists no
/// step of its own.
#[test]
fn ci_run_wraps_xtask_ci_and_every_example_is_run_or_only_built() {
    report(
        "examples CI does not know",
        &example_violations(&project_root()),
    );
}

/// The examples under `crates/*/examples/` that [`crate::ci`] does not
/// list, and whatever keeps `.ci/run` from being a wrapper of `cargo xtask
/// ci`: it must run that task, and no other cargo command but `--version`s.
fn example_violations(root: &Path) -> Vec<String> {
    let listed = |package: &str, name: &str| {
        crate::ci::RUNNABLE_EXAMPLES
            .iter()
            .chain(crate::ci::AWS_EXAMPLES)
            .any(|(p, n)| *p == package && *n == name)
    };
    let mut violations = Vec::new();
    let crates =
        std::fs::read_dir(root.join("crates")).map(|dir| dir.flatten().collect::<Vec<_>>());
    for krate in crates.unwrap_or_default() {
        let package = krate.file_name().to_string_lossy().into_owned();
        let Ok(examples) = std::fs::read_dir(krate.path().join("examples")) else {
            continue;
        };
        for example in examples.flatten() {
            let path = example.path();
            if !has_extension(&path, &["rs"]) {
                continue;
            }
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if !listed(&package, &name) {
                violations.push(format!(
                    "{}: neither in RUNNABLE_EXAMPLES nor in AWS_EXAMPLES (xtask/src/ci.rs)",
                    relative(root, &path)
                ));
            }
        }
    }
    let ci_run = read(&root.join(".ci/run"));
    let commands: Vec<&str> = ci_run
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with("echo"))
        .collect();
    if !commands
        .iter()
        .any(|line| line.trim_start_matches("exec ") == "cargo xtask ci")
    {
        violations.push(".ci/run: does not run `cargo xtask ci`".to_owned());
    }
    for (number, line) in ci_run.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("echo") {
            continue;
        }
        let command = line.trim_start_matches("exec ");
        if command.starts_with("cargo ")
            && command != "cargo xtask ci"
            && !command.ends_with(" --version")
        {
            violations.push(format!(
                ".ci/run:{}: runs `{command}`, which belongs in the steps of `cargo xtask ci` (xtask/src/ci.rs)",
                number + 1
            ));
        }
    }
    violations.sort();
    violations
}

/// Checks `crates/<name>/Cargo.toml` of every crate in [`DEPENDENCY_RULES`] under `root`.
fn dependency_rule_violations(root: &Path) -> Vec<String> {
    let mut res = Vec::new();
    for rule in DEPENDENCY_RULES {
        let manifest = root.join("crates").join(rule.krate).join("Cargo.toml");
        let text = read(&manifest);
        res.extend(manifest_violations(&relative(root, &manifest), &text, rule));
    }
    res
}

/// Checks that every Rust source under `root` opens with a module doc.
fn module_doc_violations(root: &Path) -> Vec<String> {
    rust_sources(root)
        .iter()
        .filter_map(|path| file_module_doc_violation(&relative(root, path), &read(path)))
        .collect()
}

/// Checks every Rust source under `root` for `pub use …::*`.
fn glob_re_export_violations(root: &Path) -> Vec<String> {
    rust_sources(root)
        .iter()
        .flat_map(|path| file_glob_re_export_violations(&relative(root, path), &read(path)))
        .collect()
}

/// Returns a message for every `pub use` (of any visibility) that ends in `*`.
fn file_glob_re_export_violations(file: &str, text: &str) -> Vec<String> {
    let mut res = Vec::new();
    let mut statement: Option<(usize, String)> = None;
    for (idx, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if statement.is_none() && trimmed.starts_with("pub") && trimmed.contains(" use ") {
            statement = Some((idx, String::new()));
        }
        if let Some((start, text)) = &mut statement {
            text.push_str(trimmed);
            if trimmed.ends_with(';') {
                if text.contains("::*") {
                    res.push(format!(
                        "{file}:{}: `{text}` re-exports with a glob: list the names",
                        *start + 1
                    ));
                }
                statement = None;
            }
        }
    }
    res
}

/// Checks every Rust source under `root` for forbidden test attributes.
fn forbidden_attribute_violations(root: &Path) -> Vec<String> {
    rust_sources(root)
        .iter()
        .flat_map(|path| file_forbidden_attribute_violations(&relative(root, path), &read(path)))
        .collect()
}

/// Checks the `.rs`, `.toml` and `.md` files under `root` for trailing whitespace.
fn trailing_whitespace_violations(root: &Path) -> Vec<String> {
    repository_text_files(root)
        .iter()
        .flat_map(|path| file_trailing_whitespace_violations(&relative(root, path), &read(path)))
        .collect()
}

/// Panics with one line per violation when there are any.
#[track_caller]
pub(crate) fn report(what: &str, violations: &[String]) {
    if let Some(message) = report_message(what, violations) {
        panic!("{message}");
    }
}

/// The failure message for `violations`, or `None` when there are none.
fn report_message(what: &str, violations: &[String]) -> Option<String> {
    if violations.is_empty() {
        return None;
    }
    Some(format!(
        "{what} ({} found):\n  {}\n",
        violations.len(),
        violations.join("\n  ")
    ))
}

/// Reads a file the checks need, panicking with its path when it cannot be read.
#[track_caller]
pub(crate) fn read(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => panic!("cannot read {}: {err}", path.display()),
    }
}

/// `path` relative to `root`, with `/` separators, for messages.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|it| it.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

// ---------------------------------------------------------------------------
// Dependency rule.
// ---------------------------------------------------------------------------

/// The kind of dependency table an entry was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DependencyKind {
    /// `[dependencies]`.
    Normal,
    /// `[dev-dependencies]`.
    Dev,
    /// `[build-dependencies]`.
    Build,
}

/// One dependency named in a `Cargo.toml`.
#[derive(Debug)]
struct Dependency {
    /// The package name (the `package = "…"` value for renamed dependencies).
    name: String,
    /// Which kind of table lists it.
    kind: DependencyKind,
    /// The table header as written, for messages, e.g. `[dev-dependencies]`.
    table: String,
    /// 1-based line number of the entry.
    line: usize,
}

/// Returns `path:line: …` messages for every dependency that `rule` forbids.
fn manifest_violations(file: &str, manifest: &str, rule: &DependencyRule) -> Vec<String> {
    let mut res = Vec::new();
    for dep in parse_dependencies(manifest) {
        let name = dep.name.to_ascii_lowercase().replace('_', "-");
        if name.starts_with("aws-") {
            res.push(format!(
                "{file}:{}: `{}` must not depend on `{}` (in {}): the AWS SDK stays out of {}",
                dep.line, rule.krate, dep.name, dep.table, rule.krate
            ));
        }
        let tokio_allowed = rule.tokio_dev_dependency_allowed && dep.kind == DependencyKind::Dev;
        if name == "tokio" && !tokio_allowed {
            let allowed_note = if rule.tokio_dev_dependency_allowed {
                " (only as a dev-dependency)"
            } else {
                ""
            };
            res.push(format!(
                "{file}:{}: `{}` must not depend on `tokio` (in {}){allowed_note}",
                dep.line, rule.krate, dep.table
            ));
        }
    }
    res
}

/// What the current TOML table is, as far as dependencies are concerned.
enum Section {
    /// A table that lists dependencies, e.g. `[dependencies]`.
    Dependencies { kind: DependencyKind, table: String },
    /// A table for a single dependency, e.g. `[dependencies.serde]`.
    SingleDependency { kind: DependencyKind, table: String },
    /// Anything else: `[package]`, `[features]`, `[[test]]`, ….
    Other,
}

/// Lists the dependencies of a `Cargo.toml` with a minimal line-based reader.
///
/// Understands `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`, their
/// `[target.<cfg>.…]` forms, single-dependency tables such as `[dependencies.serde]`,
/// dotted keys (`tokio.workspace = true`), renames through `package = "…"` and
/// values (arrays, inline tables) that span several lines.
fn parse_dependencies(manifest: &str) -> Vec<Dependency> {
    let mut res: Vec<Dependency> = Vec::new();
    let mut section = Section::Other;
    let mut open_brackets = 0i32;

    for (idx, raw_line) in manifest.lines().enumerate() {
        let line_no = idx + 1;
        let line = strip_toml_comment(raw_line).trim();
        if 0 < open_brackets {
            open_brackets += bracket_balance(line, true);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = parse_section_header(line);
            if let Section::SingleDependency { kind, table } = &section {
                let name = single_dependency_name(table);
                res.push(Dependency {
                    name,
                    kind: *kind,
                    table: table.clone(),
                    line: line_no,
                });
            }
            continue;
        }
        let Some(eq) = find_outside_strings(line, '=') else {
            continue;
        };
        let key = split_dotted_key(&line[..eq]);
        let value = line[eq + 1..].trim();
        open_brackets = bracket_balance(value, true);

        match &section {
            Section::Dependencies { kind, table } => {
                let name = match key.as_slice() {
                    [_, field] if field == "package" => unquote(value),
                    [alias] => {
                        inline_table_value(value, "package").unwrap_or_else(|| alias.clone())
                    }
                    [alias, ..] => alias.clone(),
                    [] => continue,
                };
                res.push(Dependency {
                    name,
                    kind: *kind,
                    table: table.clone(),
                    line: line_no,
                });
            }
            Section::SingleDependency { kind, table } => {
                if let [field] = key.as_slice() {
                    if field == "package" {
                        let name = unquote(value);
                        res.push(Dependency {
                            name,
                            kind: *kind,
                            table: table.clone(),
                            line: line_no,
                        });
                    }
                }
            }
            Section::Other => {}
        }
    }
    res
}

/// Classifies a table header line such as `[target.'cfg(unix)'.dev-dependencies]`.
fn parse_section_header(line: &str) -> Section {
    if line.starts_with("[[") {
        return Section::Other;
    }
    let Some(end) = find_outside_strings(line, ']') else {
        return Section::Other;
    };
    let header = &line[1..end];
    let table = format!("[{}]", header.trim());
    let parts = split_dotted_key(header);
    let (kind_part, rest) = match parts.as_slice() {
        [first, rest @ ..] if dependency_kind(first).is_some() => (first, rest),
        [target, _cfg, second, rest @ ..]
            if target == "target" && dependency_kind(second).is_some() =>
        {
            (second, rest)
        }
        _ => return Section::Other,
    };
    let Some(kind) = dependency_kind(kind_part) else {
        return Section::Other;
    };
    match rest {
        [] => Section::Dependencies { kind, table },
        [_, ..] => Section::SingleDependency { kind, table },
    }
}

/// The dependency named by a single-dependency table header, e.g. `serde` for
/// `[dependencies.serde]`.
fn single_dependency_name(table: &str) -> String {
    let header = table.trim_start_matches('[').trim_end_matches(']');
    let parts = split_dotted_key(header);
    let kind_idx = parts
        .iter()
        .position(|it| dependency_kind(it).is_some())
        .unwrap_or(0);
    parts.get(kind_idx + 1).cloned().unwrap_or_default()
}

/// Maps a table name to the kind of dependencies it holds.
fn dependency_kind(table_name: &str) -> Option<DependencyKind> {
    match table_name.replace('_', "-").as_str() {
        "dependencies" => Some(DependencyKind::Normal),
        "dev-dependencies" => Some(DependencyKind::Dev),
        "build-dependencies" => Some(DependencyKind::Build),
        _ => None,
    }
}

/// Looks up `key` in a one-line inline table such as `{ package = "x", version = "1" }`.
fn inline_table_value(value: &str, key: &str) -> Option<String> {
    let inner = value.strip_prefix('{')?;
    let inner = match find_last_outside_strings(inner, '}') {
        Some(end) => &inner[..end],
        None => inner,
    };
    for entry in split_outside_strings(inner, ',') {
        let Some(eq) = find_outside_strings(entry, '=') else {
            continue;
        };
        if split_dotted_key(&entry[..eq]) == [key] {
            return Some(unquote(entry[eq + 1..].trim()));
        }
    }
    None
}

/// Removes a `#` comment that is not inside a string.
fn strip_toml_comment(line: &str) -> &str {
    match find_outside_strings(line, '#') {
        Some(idx) => &line[..idx],
        None => line,
    }
}

/// Splits a dotted TOML key (`target.'cfg(unix)'.dependencies`) into its unquoted parts.
fn split_dotted_key(key: &str) -> Vec<String> {
    split_outside_strings(key, '.')
        .into_iter()
        .map(|part| unquote(part.trim()))
        .collect()
}

/// Strips one pair of matching TOML quotes, if present.
fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if 2 <= value.len() && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_owned();
        }
    }
    value.to_owned()
}

/// Byte offsets and characters of `text` that are not inside a string literal.
///
/// Double-quoted strings (with backslash escapes) are always recognised; single-quoted
/// ones only when `single_quotes` is set, as in TOML (in Rust they start lifetimes).
fn outside_strings(text: &str, single_quotes: bool) -> Vec<(usize, char)> {
    let mut res = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (idx, ch) in text.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if ch == '\\' => escaped = true,
            Some(open) if ch == open => quote = None,
            Some(_) => {}
            None if ch == '"' || (single_quotes && ch == '\'') => quote = Some(ch),
            None => res.push((idx, ch)),
        }
    }
    res
}

/// The first occurrence of `needle` outside TOML strings.
fn find_outside_strings(text: &str, needle: char) -> Option<usize> {
    outside_strings(text, true)
        .into_iter()
        .find(|&(_, ch)| ch == needle)
        .map(|(idx, _)| idx)
}

/// The last occurrence of `needle` outside TOML strings.
fn find_last_outside_strings(text: &str, needle: char) -> Option<usize> {
    outside_strings(text, true)
        .into_iter()
        .rev()
        .find(|&(_, ch)| ch == needle)
        .map(|(idx, _)| idx)
}

/// Splits `text` at `sep` where it is outside strings and outside nested brackets.
fn split_outside_strings(text: &str, sep: char) -> Vec<&str> {
    let mut res = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (idx, ch) in outside_strings(text, true) {
        match ch {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            _ if ch == sep && depth == 0 => {
                res.push(&text[start..idx]);
                start = idx + ch.len_utf8();
            }
            _ => {}
        }
    }
    res.push(&text[start..]);
    res
}

/// Opening minus closing brackets and braces outside strings.
fn bracket_balance(text: &str, single_quotes: bool) -> i32 {
    outside_strings(text, single_quotes)
        .into_iter()
        .map(|(_, ch)| match ch {
            '[' | '{' => 1,
            ']' | '}' => -1,
            _ => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Source files.
// ---------------------------------------------------------------------------

/// Every `.rs` file under `crates/` and `xtask/`, skipping build output.
fn rust_sources(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        let dir = root.join(dir);
        if dir.is_dir() {
            walk(root, &dir, &mut files);
        }
    }
    files.retain(|path| has_extension(path, &["rs"]));
    files
}

/// Returns a message when `text` does not open with a `//!` module doc.
///
/// Inner attributes (`#![…]`, possibly over several lines) and blank lines may come first.
fn file_module_doc_violation(file: &str, text: &str) -> Option<String> {
    let mut open_attribute = 0i32;
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim();
        if 0 < open_attribute {
            open_attribute += bracket_balance(line, false);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        // A crate's front page included from its README is its module doc.
        if line.starts_with("#![doc") {
            return None;
        }
        if line.starts_with("#![") {
            open_attribute = bracket_balance(line, false);
            continue;
        }
        if line.starts_with("//!") {
            return None;
        }
        let shown: String = line.chars().take(60).collect();
        return Some(format!(
            "{file}:{}: expected a `//!` module doc at the top of the file, found `{shown}`",
            idx + 1
        ));
    }
    Some(format!(
        "{file}:1: expected a `//!` module doc at the top of the file, found none"
    ))
}

/// Returns a message for every line that uses a forbidden test attribute.
///
/// Comment lines are skipped, so documentation may mention the attributes.
fn file_forbidden_attribute_violations(file: &str, text: &str) -> Vec<String> {
    let mut res = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for pattern in FORBIDDEN_ATTRIBUTES {
            let found = line.match_indices(pattern).any(|(pos, _)| {
                let next = line[pos + pattern.len()..].chars().next();
                matches!(next, None | Some(']' | '(' | '=' | ' ' | '\t'))
            });
            if found {
                res.push(format!(
                    "{file}:{}: `{pattern}]` is not allowed: assert on the current behaviour \
                     (with a FIXME) or on the `Err` instead",
                    idx + 1
                ));
            }
        }
    }
    res
}

// ---------------------------------------------------------------------------
// Whitespace.
// ---------------------------------------------------------------------------

/// The `.rs`, `.toml` and `.md` files of the repository.
///
/// Uses git's view (tracked files plus untracked ones that are not ignored) when the
/// root is a git work tree, and otherwise walks the directory tree. Build output under
/// `target/` is skipped either way.
fn repository_text_files(root: &Path) -> Vec<PathBuf> {
    let files = match git_files(root) {
        Some(files) => files,
        None => {
            let mut files = Vec::new();
            walk(root, root, &mut files);
            files
        }
    };
    whitespace_checked(root, files)
}

/// Keeps the existing `.rs`, `.toml` and `.md` files outside `<root>/target`, sorted.
fn whitespace_checked(root: &Path, mut files: Vec<PathBuf>) -> Vec<PathBuf> {
    files.retain(|path| {
        has_extension(path, WHITESPACE_CHECKED_EXTENSIONS)
            && path.is_file()
            && !path
                .strip_prefix(root)
                .is_ok_and(|rel| rel.starts_with("target"))
    });
    files.sort();
    files
}

/// Files git knows about or would add under `root`, or `None` outside a git work tree.
fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8(output.stdout).ok()?;
    let files = stdout
        .split('\0')
        .filter(|it| !it.is_empty())
        .map(|it| root.join(it))
        .collect();
    Some(files)
}

/// Returns a message for every line of `text` that ends in a space or a tab.
fn file_trailing_whitespace_violations(file: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.ends_with([' ', '\t']))
        .map(|(idx, _)| format!("{file}:{}: trailing whitespace", idx + 1))
        .collect()
}

// ---------------------------------------------------------------------------
// The behavioural spec.
// ---------------------------------------------------------------------------

/// Checks every spec citation under `root` against the spec's headings.
fn spec_citation_violations(root: &Path) -> Vec<String> {
    let sections = spec_sections(root);
    let mut res = Vec::new();
    for path in citing_files(root) {
        let file = relative(root, &path);
        for (line, id) in citations(&read(&path)) {
            if !sections.contains(&id) {
                res.push(format!(
                    "{file}:{line}: cites {SECTION_SIGN}{id}, but no heading of {SPEC_DIR}/*.md has that section"
                ));
            }
        }
    }
    res
}

/// Checks that each spec section with a confirmed claim lists an `https` source.
fn spec_source_violations(root: &Path) -> Vec<String> {
    let mut res = Vec::new();
    for path in spec_files(root) {
        let file = relative(root, &path);
        for section in markdown_sections(&read(&path)) {
            if section.body.contains(CONFIRMED_MARKER) && !section.body.contains("https://") {
                res.push(format!(
                    "{file}:{}: section `{}` marks a claim {CONFIRMED_MARKER} but lists no https source",
                    section.line, section.heading
                ));
            }
        }
    }
    res
}

/// The `.md` files of the spec directory under `root`, sorted.
fn spec_files(root: &Path) -> Vec<PathBuf> {
    let dir = root.join(SPEC_DIR);
    let mut files = Vec::new();
    if dir.is_dir() {
        walk(root, &dir, &mut files);
    }
    files.retain(|path| has_extension(path, &["md"]));
    files
}

/// The files under `root` that may cite the spec, sorted within each directory.
fn citing_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in CITING_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            walk(root, &dir, &mut files);
        }
    }
    files.extend(CITING_FILES.iter().map(|file| root.join(file)));
    files.retain(|path| path.is_file() && has_extension(path, CITING_EXTENSIONS));
    files
}

/// The section numbers the spec's headings define, such as `A2.2` or `B13`.
fn spec_sections(root: &Path) -> std::collections::BTreeSet<String> {
    spec_files(root)
        .iter()
        .flat_map(|path| markdown_sections(&read(path)))
        .filter_map(|section| heading_section_id(&section.heading))
        .collect()
}

/// One section of a Markdown document: a heading and the text up to the next heading.
#[derive(Debug, PartialEq, Eq)]
struct MarkdownSection {
    /// 1-based line number of the heading (0 for text before the first heading).
    line: usize,
    /// The heading's text, without the leading `#`s.
    heading: String,
    /// The lines under the heading, joined with newlines.
    body: String,
}

/// Splits a Markdown document at its headings, ignoring `#` lines inside code fences.
fn markdown_sections(text: &str) -> Vec<MarkdownSection> {
    let mut res = vec![MarkdownSection {
        line: 0,
        heading: String::new(),
        body: String::new(),
    }];
    let mut in_fence = false;
    for (idx, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let heading = trimmed.trim_start_matches('#');
        let is_heading = !in_fence
            && trimmed.starts_with('#')
            && (heading.is_empty() || heading.starts_with(' '));
        if is_heading {
            res.push(MarkdownSection {
                line: idx + 1,
                heading: heading.trim().to_owned(),
                body: String::new(),
            });
            continue;
        }
        let current = res
            .last_mut()
            .expect("the preamble section is always there");
        current.body.push_str(line);
        current.body.push('\n');
    }
    res
}

/// The section number a heading defines: its first word when that is a part
/// letter and a number (`B13`, `C1.3`), with an optional trailing period.
fn heading_section_id(heading: &str) -> Option<String> {
    let word = heading.split_whitespace().next()?;
    let word = word.strip_suffix('.').unwrap_or(word);
    let (id, rest) = parse_section_id(word)?;
    rest.is_empty().then_some(id)
}

/// Every citation in `text`, as (1-based line, section number).
fn citations(text: &str) -> Vec<(usize, String)> {
    let mut res = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        for (pos, _) in line.match_indices(SECTION_SIGN) {
            let after = &line[pos + SECTION_SIGN.len_utf8()..];
            if let Some((id, _)) = parse_section_id(after) {
                res.push((idx + 1, id));
            }
        }
    }
    res
}

/// Reads a section number (an uppercase part letter, a number, and optionally
/// `.` and a number) from the start of `text`; returns it and the rest.
fn parse_section_id(text: &str) -> Option<(String, &str)> {
    let part = text.chars().next()?;
    if !part.is_ascii_uppercase() {
        return None;
    }
    let digits = |from: usize| -> usize {
        text[from..]
            .find(|ch: char| !ch.is_ascii_digit())
            .map_or(text.len(), |len| from + len)
    };
    let major_end = digits(1);
    if major_end == 1 {
        return None;
    }
    let mut end = major_end;
    if text[end..].starts_with('.') {
        let minor_end = digits(end + 1);
        if minor_end > end + 1 {
            end = minor_end;
        }
    }
    Some((text[..end].to_owned(), &text[end..]))
}

// ---------------------------------------------------------------------------
// File system helpers.
// ---------------------------------------------------------------------------

/// Collects every file under `dir`, skipping `.git` and cargo build directories.
///
/// A build directory is `<root>/target` or any directory holding a `CACHEDIR.TAG`.
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => panic!("cannot list {}: {err}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|it| it.path()))
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            let is_git = path.file_name().is_some_and(|name| name == ".git");
            let is_build_output = path == root.join("target") || path.join("CACHEDIR.TAG").exists();
            if !is_git && !is_build_output {
                walk(root, &path, files);
            }
            continue;
        }
        files.push(path);
    }
}

/// Whether `path` ends in one of `extensions`.
fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| extensions.contains(&ext))
}

// ---------------------------------------------------------------------------
// Tests of the checks themselves, on fixture trees.
// ---------------------------------------------------------------------------

/// A directory tree in the system temp directory, removed when dropped.
struct Fixture {
    /// The fixture's root directory.
    root: PathBuf,
}

impl Fixture {
    /// Creates a fresh directory holding `files` (relative path, contents).
    fn new(files: &[(&str, &str)]) -> Fixture {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);

        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |it| it.subsec_nanos());
        let name = format!(
            "amishare-tidy-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(name);
        for (rel, contents) in files {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, contents).unwrap();
        }
        fs::create_dir_all(&root).unwrap();
        Fixture { root }
    }

    /// Relative paths of `files`, sorted, for comparing listings.
    fn relative_all(&self, files: &[PathBuf]) -> Vec<String> {
        let mut res: Vec<String> = files
            .iter()
            .map(|path| relative(&self.root, path))
            .collect();
        res.sort();
        res
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Every way a manifest can name a dependency is seen, with its line.
#[test]
fn dependency_rule_finds_every_table_form() {
    // The `[package]`, `[features]` and `[[test]]` entries are not dependencies.
    let manifest = r#"[package]
name = "aws-lookalike" # a package field, not a dependency
description = "uses [dependencies] and tokio in prose"

[features]
aws = ["dep:aws-config"]

[dependencies]
serde.workspace = true
aws-config = { version = "1", features = [
    "behavior-version-latest", # tokio = "1" inside an array is not a key
] }
sdk = { package = "aws-sdk-ec2", version = "1" }
thiserror = "2"

[dependencies.aws-sdk-kms]
version = "1"

[dependencies.ec2]
package = "aws-sdk-ec2"
version = "1"

[target.'cfg(target_os = "linux")'.dependencies]
tokio = { workspace = true }

[build-dependencies]
"aws-smithy-types" = "1"

[dev-dependencies]
tokio = { workspace = true, features = ["test-util"] }
aws_sdk_sts = "1"

[[test]]
name = "aws-it"
path = "tests/it/main.rs"
"#;
    let policy_manifest =
        "[package]\nname = \"amishare-policy\"\n\n[dev-dependencies]\ntokio.workspace = true\n";
    let fixture = Fixture::new(&[
        ("crates/amishare-core/Cargo.toml", manifest),
        ("crates/amishare-policy/Cargo.toml", policy_manifest),
    ]);
    assert_eq!(
        dependency_rule_violations(&fixture.root),
        [
            "crates/amishare-core/Cargo.toml:10: `amishare-core` must not depend on `aws-config` (in [dependencies]): the AWS SDK stays out of amishare-core",
            "crates/amishare-core/Cargo.toml:13: `amishare-core` must not depend on `aws-sdk-ec2` (in [dependencies]): the AWS SDK stays out of amishare-core",
            "crates/amishare-core/Cargo.toml:16: `amishare-core` must not depend on `aws-sdk-kms` (in [dependencies.aws-sdk-kms]): the AWS SDK stays out of amishare-core",
            "crates/amishare-core/Cargo.toml:20: `amishare-core` must not depend on `aws-sdk-ec2` (in [dependencies.ec2]): the AWS SDK stays out of amishare-core",
            "crates/amishare-core/Cargo.toml:24: `amishare-core` must not depend on `tokio` (in [target.'cfg(target_os = \"linux\")'.dependencies]) (only as a dev-dependency)",
            "crates/amishare-core/Cargo.toml:27: `amishare-core` must not depend on `aws-smithy-types` (in [build-dependencies]): the AWS SDK stays out of amishare-core",
            "crates/amishare-core/Cargo.toml:31: `amishare-core` must not depend on `aws_sdk_sts` (in [dev-dependencies]): the AWS SDK stays out of amishare-core",
            "crates/amishare-policy/Cargo.toml:5: `amishare-policy` must not depend on `tokio` (in [dev-dependencies])",
        ]
    );
}

/// Look-alike names and a tokio dev-dependency of core are accepted.
#[test]
fn dependency_rule_accepts_clean_manifests() {
    let core_manifest = r#"[package]
name = "amishare-core"

[features]
mock = ["dep:mockall"]

[dependencies]
amishare-policy.workspace = true
mockall = { workspace = true, optional = true }
tokio-util-lookalike = "1"
awsome = "1"

[dev-dependencies]
tokio = { workspace = true, features = ["test-util"] }

[target."x86_64-unknown-linux-gnu".dev-dependencies.tokio]
workspace = true
"#;
    let policy_manifest = r#"[package]
name = "amishare-policy"

[dependencies]
serde.workspace = true

[dev-dependencies]
proptest.workspace = true
"#;
    let fixture = Fixture::new(&[
        ("crates/amishare-core/Cargo.toml", core_manifest),
        ("crates/amishare-policy/Cargo.toml", policy_manifest),
    ]);
    assert_eq!(
        dependency_rule_violations(&fixture.root),
        Vec::<String>::new()
    );
}

/// Attributes and blank lines may precede the module doc, which may be a
/// `#![doc = …]` (a README included as the crate's front page); anything
/// else is reported.
#[test]
fn glob_re_export_check_finds_one_and_several_line_globs() {
    let text = "use std::io::*;\npub use crate::model::*;\npub(crate) use a::{\n    b::*,\n};\npub use x::{Y, Z};\n";
    let found = file_glob_re_export_violations("lib.rs", text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("lib.rs:2:"), "{found:?}");
    assert!(found[1].starts_with("lib.rs:3:"), "{found:?}");
}

#[test]
fn module_doc_check_reports_the_first_offending_line() {
    let fixture = Fixture::new(&[
        ("crates/a/src/lib.rs", "//! Docs.\npub fn f() {}\n"),
        (
            "crates/a/src/attrs.rs",
            "#![allow(dead_code)]\n\n#![cfg_attr(\n    test,\n    allow(unused)\n)]\n\n//! Docs after attributes.\n",
        ),
        ("crates/a/src/bare.rs", "\n\nfn main() {}\n"),
        (
            "crates/a/src/readme.rs",
            "#![doc = include_str!(\"../README.md\")]\npub fn f() {}\n",
        ),
        (
            "crates/a/src/later_doc_attr.rs",
            "#![allow(dead_code)]\n#![doc = \"Docs.\"]\n",
        ),
        ("crates/a/src/plain_comment.rs", "// Not a module doc.\n//! Too late.\n"),
        ("crates/a/src/outer_doc.rs", "/// An item doc.\nfn f() {}\n"),
        ("crates/a/src/empty.rs", ""),
        ("crates/a/tests/it/main.rs", "//! Integration tests.\n"),
        ("crates/a/tests/it/nodoc.rs", "use super::*;\n"),
        ("crates/a/target/debug/build/out.rs", "fn generated() {}\n"),
        ("crates/a/target/CACHEDIR.TAG", ""),
        ("xtask/src/main.rs", "fn main() {}\n"),
        ("target/debug/gen.rs", "fn generated() {}\n"),
        ("other/ignored.rs", "fn not_checked() {}\n"),
    ]);
    let sources = rust_sources(&fixture.root);
    assert_eq!(
        fixture.relative_all(&sources),
        [
            "crates/a/src/attrs.rs",
            "crates/a/src/bare.rs",
            "crates/a/src/empty.rs",
            "crates/a/src/later_doc_attr.rs",
            "crates/a/src/lib.rs",
            "crates/a/src/outer_doc.rs",
            "crates/a/src/plain_comment.rs",
            "crates/a/src/readme.rs",
            "crates/a/tests/it/main.rs",
            "crates/a/tests/it/nodoc.rs",
            "xtask/src/main.rs",
        ]
    );
    assert_eq!(
        module_doc_violations(&fixture.root),
        [
            "crates/a/src/bare.rs:3: expected a `//!` module doc at the top of the file, found `fn main() {}`",
            "crates/a/src/empty.rs:1: expected a `//!` module doc at the top of the file, found none",
            "crates/a/src/outer_doc.rs:1: expected a `//!` module doc at the top of the file, found `/// An item doc.`",
            "crates/a/src/plain_comment.rs:1: expected a `//!` module doc at the top of the file, found `// Not a module doc.`",
            "crates/a/tests/it/nodoc.rs:1: expected a `//!` module doc at the top of the file, found `use super::*;`",
            "xtask/src/main.rs:1: expected a `//!` module doc at the top of the file, found `fn main() {}`",
        ]
    );
}

/// Each forbidden attribute is reported with its line; comments and longer names are not.
#[test]
fn forbidden_attribute_check_names_file_and_line() {
    let ignore = FORBIDDEN_ATTRIBUTES[0];
    let should_panic = FORBIDDEN_ATTRIBUTES[1];
    let text = format!(
        "//! Tests.\n\
         #[test]\n\
         {ignore}]\n\
         fn a() {{}}\n\
         #[test]\n    {ignore} = \"slow\"]\n\
         fn b() {{}}\n\
         #[test]\n\
         {should_panic}(expected = \"boom\")]\n\
         fn c() {{}}\n\
         /// Mentions {ignore}] in a doc comment, which is fine.\n\
         #[test]\n\
         {should_panic}]\n\
         fn d() {{}}\n\
         {ignore}_this_is_another_attribute]\n\
         fn e() {{}}\n"
    );
    let fixture = Fixture::new(&[("crates/a/tests/it/main.rs", &text)]);
    let got = forbidden_attribute_violations(&fixture.root);
    let advice = "assert on the current behaviour (with a FIXME) or on the `Err` instead";
    assert_eq!(
        got,
        [
            format!("crates/a/tests/it/main.rs:3: `{ignore}]` is not allowed: {advice}"),
            format!("crates/a/tests/it/main.rs:6: `{ignore}]` is not allowed: {advice}"),
            format!("crates/a/tests/it/main.rs:9: `{should_panic}]` is not allowed: {advice}"),
            format!("crates/a/tests/it/main.rs:13: `{should_panic}]` is not allowed: {advice}"),
        ]
    );
}

/// Only `.rs`, `.toml` and `.md` files outside build output and `.git` are checked.
#[test]
fn trailing_whitespace_check_covers_rs_toml_and_md_only() {
    let fixture = Fixture::new(&[
        ("README.md", "# Title\nline with two spaces  \nclean\n"),
        ("Cargo.toml", "[workspace]\nmembers = []\t\n"),
        ("crates/a/src/lib.rs", "//! Docs.\r\nfn f() {}\r\n"),
        ("crates/a/src/bad.rs", "//! Docs.\nfn f() {} \n"),
        ("notes.txt", "not checked   \n"),
        ("target/debug/x.rs", "skipped \n"),
        (".git/config.toml", "skipped \n"),
    ]);
    let mut walked = Vec::new();
    walk(&fixture.root, &fixture.root, &mut walked);
    let files = whitespace_checked(&fixture.root, walked);
    assert_eq!(
        fixture.relative_all(&files),
        [
            "Cargo.toml",
            "README.md",
            "crates/a/src/bad.rs",
            "crates/a/src/lib.rs"
        ]
    );
    assert_eq!(
        trailing_whitespace_violations(&fixture.root),
        [
            "Cargo.toml:2: trailing whitespace",
            "README.md:2: trailing whitespace",
            "crates/a/src/bad.rs:2: trailing whitespace",
        ]
    );
}

/// In a git work tree, new files count and ignored ones do not.
#[test]
fn git_listing_includes_untracked_files_and_honours_gitignore() {
    let fixture = Fixture::new(&[
        (".gitignore", "/target\n/scratch.md\n"),
        ("README.md", "# Title\n"),
        ("crates/a/Cargo.toml", "[package]\n"),
        ("scratch.md", "ignored \n"),
        ("target/debug/x.rs", "ignored \n"),
    ]);
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&fixture.root)
        .status();
    let skip = std::env::var_os(SKIP_WITHOUT_GIT).is_some();
    match git_ready(init, skip) {
        Ok(true) => {}
        Ok(false) => {
            skipped(
                "git_listing_includes_untracked_files_and_honours_gitignore",
                &format!("git is not installed and {SKIP_WITHOUT_GIT} is set"),
            );
            return;
        }
        Err(why) => panic!("{why}"),
    }
    let files = git_files(&fixture.root).expect("a fresh git work tree can be listed");
    let files = whitespace_checked(&fixture.root, files);
    assert_eq!(
        fixture.relative_all(&files),
        ["README.md", "crates/a/Cargo.toml"]
    );
}

/// Set to let the tests that need git pass where git is not installed; each
/// reports itself skipped.
const SKIP_WITHOUT_GIT: &str = "AMISHARE_TIDY_WITHOUT_GIT";

/// Whether a test that needs git may go on, given how `git init` went:
/// `Ok(false)` to skip it (git is missing and `skip` was asked for), `Err`
/// when git is missing unasked or failed.
fn git_ready(init: std::io::Result<std::process::ExitStatus>, skip: bool) -> Result<bool, String> {
    match init {
        Ok(status) if status.success() => Ok(true),
        Ok(status) => Err(format!("git init failed: {status}")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && skip => Ok(false),
        Err(err) => Err(format!(
            "this test needs git ({err}); set {SKIP_WITHOUT_GIT}=1 to skip it where git is not installed"
        )),
    }
}

/// Says on the terminal, past the test harness's capture, that `test` was
/// skipped and why: a skipped test must not look like a passed one.
fn skipped(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "test {test} SKIPPED: {why}");
}

/// Git missing fails a test that needs it, unless the skip is asked for.
#[test]
fn a_test_that_needs_git_fails_without_it_unless_told_to_skip() {
    use std::os::unix::process::ExitStatusExt as _;
    let missing = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(
        git_ready(Ok(std::process::ExitStatus::from_raw(0)), false),
        Ok(true)
    );
    assert_eq!(git_ready(missing(), true), Ok(false));
    let err = git_ready(missing(), false).unwrap_err();
    assert!(err.contains("set AMISHARE_TIDY_WITHOUT_GIT=1"), "{err}");
    // A failing git is a failure, skip or not.
    let failed = git_ready(Ok(std::process::ExitStatus::from_raw(128 << 8)), true);
    assert_eq!(failed, Err("git init failed: exit status: 128".to_owned()));
}

/// The failure message lists every violation on its own line.
#[test]
fn report_lists_every_violation() {
    let violations = ["a.rs:1: one".to_owned(), "b.rs:2: two".to_owned()];
    assert_eq!(
        report_message("things", &violations).as_deref(),
        Some("things (2 found):\n  a.rs:1: one\n  b.rs:2: two\n")
    );
    assert_eq!(report_message("nothing", &[]), None);
}

/// A citation of `id`, built at run time so that this file cites nothing.
fn cite(id: &str) -> String {
    format!("{SECTION_SIGN}{id}")
}

/// Section numbers are read from headings at any level; `#` lines in code fences are not headings.
#[test]
fn spec_sections_come_from_headings_only() {
    let kms = "# Part A\n\n## A2. Policies\n\n### A2.2 Evaluation\n\ntext\n\n```sh\n# A9 a comment\n```\n\n## A5. Operations\n\n### CreateGrant\n";
    let ec2 = "## B13. Outcomes\n#B14 no space, not a heading\n## Wire format\n";
    let fixture = Fixture::new(&[
        ("docs/spec/kms.md", kms),
        ("docs/spec/ec2.md", ec2),
        ("docs/spec/notes.txt", "## B99. not markdown\n"),
    ]);
    let sections: Vec<String> = spec_sections(&fixture.root).into_iter().collect();
    assert_eq!(sections, ["A2", "A2.2", "A5", "B13"]);
}

/// Citations are read with their minor number, and a trailing period or word is not part of them.
#[test]
fn citations_are_parsed_to_their_section_numbers() {
    let text = format!(
        "//! {} and {} step 5.\n/// {}, {} RevokeGrant; {}.\nno sign here: A5, and {}x and {}.\n",
        cite("B3"),
        cite("A2.2"),
        cite("B11"),
        cite("A5"),
        cite("B13"),
        cite("a1"),
        cite("C"),
    );
    assert_eq!(
        citations(&text),
        [
            (1, "B3".to_owned()),
            (1, "A2.2".to_owned()),
            (2, "B11".to_owned()),
            (2, "A5".to_owned()),
            (2, "B13".to_owned()),
        ]
    );
}

/// A citation of a section no heading has is reported with its file and line, wherever it is.
#[test]
fn citation_check_reports_missing_sections() {
    let code = format!(
        "//! Follows {} and {}.\nfn f() {{}}\n/// See {}.\n",
        cite("A2.2"),
        cite("B13"),
        cite("B1"),
    );
    let architecture = format!(
        "# Architecture\n\nThe spec ({}) and {}.\n",
        cite("C1.3"),
        cite("C1.9")
    );
    let readme = format!("Only {} here.\n", cite("A5"));
    let spec = format!(
        "## A2. P\n### A2.2 E\n## A5. O\n## B13. T\n### C1.3 G\nSee {}.\n",
        cite("D1")
    );
    let fixture = Fixture::new(&[
        ("crates/a/src/lib.rs", &code),
        (
            "crates/a/target/debug/gen.rs",
            &format!("// {}\n", cite("Z1")),
        ),
        ("crates/a/target/CACHEDIR.TAG", ""),
        ("xtask/src/main.rs", &format!("//! {}\n", cite("A7"))),
        ("ARCHITECTURE.md", &architecture),
        ("README.md", &readme),
        ("docs/spec/kms.md", &spec),
        ("docs/other.md", &format!("{}\n", cite("Z2"))),
    ]);
    let sign = SECTION_SIGN;
    assert_eq!(
        spec_citation_violations(&fixture.root),
        [
            format!("crates/a/src/lib.rs:3: cites {sign}B1, but no heading of docs/spec/*.md has that section"),
            format!("xtask/src/main.rs:1: cites {sign}A7, but no heading of docs/spec/*.md has that section"),
            format!("docs/spec/kms.md:6: cites {sign}D1, but no heading of docs/spec/*.md has that section"),
            format!("ARCHITECTURE.md:3: cites {sign}C1.9, but no heading of docs/spec/*.md has that section"),
        ]
    );
}

/// Only sections that mark a claim confirmed need an https source; each section is judged alone.
#[test]
fn source_check_reports_confirmed_sections_without_links() {
    let spec = "# Part B\nIntro [P].\n\n## B1. States\nA state. [C]\n\nSources:\nhttps://docs.aws.amazon.com/x.html\n\n## B2. Copy\nA copy. [C]\nSources: http://example.com only\n\n### B2.1 Guesses\nA guess. [U]\n\n## B3. Fence\n```\n# B4 not a heading [C]\n```\n";
    let readme = "# Spec\nMarkers: [C] confirmed (https://docs.aws.amazon.com/).\n";
    let fixture = Fixture::new(&[("docs/spec/ec2.md", spec), ("docs/spec/README.md", readme)]);
    assert_eq!(
        spec_source_violations(&fixture.root),
        [
            "docs/spec/ec2.md:10: section `B2. Copy` marks a claim [C] but lists no https source",
            "docs/spec/ec2.md:17: section `B3. Fence` marks a claim [C] but lists no https source",
        ]
    );
}

/// An example CI does not know is reported, and so is a `.ci/run` that
/// runs steps of its own instead of `cargo xtask ci`.
#[test]
fn example_check_names_unknown_examples_and_steps_of_ci_run_s_own() {
    let fixture = Fixture::new(&[
        (
            "crates/amishare-sim/examples/own_automation.rs",
            "//! Runs.\n",
        ),
        ("crates/amishare-sim/examples/stray.rs", "//! Unknown.\n"),
        ("crates/amishare-aws/examples/share_on_aws.rs", "//! AWS.\n"),
        (
            ".ci/run",
            "# builds\necho \"== cargo build\"\ncargo --version\ncargo build --workspace --examples\ntarget/debug/examples/own_automation\n",
        ),
    ]);
    assert_eq!(
        example_violations(&fixture.root),
        [
            ".ci/run: does not run `cargo xtask ci`",
            ".ci/run:4: runs `cargo build --workspace --examples`, which belongs in the steps of `cargo xtask ci` (xtask/src/ci.rs)",
            "crates/amishare-sim/examples/stray.rs: neither in RUNNABLE_EXAMPLES nor in AWS_EXAMPLES (xtask/src/ci.rs)",
        ]
    );
}

/// A step's command runs cargo with the words after `cargo`, its
/// environment set apart.
#[test]
fn ci_cargo_steps_run_the_words_after_cargo() {
    assert_eq!(
        crate::ci::cargo_args("RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps"),
        ["doc", "--workspace", "--no-deps"]
    );
    assert_eq!(
        crate::ci::cargo_args("cargo fmt --all --check"),
        ["fmt", "--all", "--check"]
    );
}

/// `cargo xtask ci --list` prints every step once, in the order it runs
/// them: the lints first, each runnable example after the build of the
/// examples, LocalStack last but for the optional cargo-deny.
#[test]
fn ci_list_names_every_step_in_order() {
    let list = crate::ci::list();
    let steps: Vec<&str> = list.lines().collect();
    assert_eq!(steps.first(), Some(&"cargo fmt --all --check"));
    let position = |name: &str| {
        steps
            .iter()
            .position(|step| *step == name)
            .unwrap_or_else(|| panic!("`{name}` is a step:\n{list}"))
    };
    let build = position("cargo build --workspace --examples");
    for (package, example) in crate::ci::RUNNABLE_EXAMPLES {
        assert!(build < position(&format!("{package} example {example}")));
    }
    assert!(position("cargo test --workspace") < build);
    assert_eq!(position("cargo xtask e2e"), steps.len() - 2);
    let mut unique = steps.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), steps.len(), "no step twice:\n{list}");
}
