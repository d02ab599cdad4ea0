//! Every command, argument and flag of cmpctl says what it is for, and flags that take one of
//! a few values list them: read from `-h` as a person would, command by command.

use std::collections::VecDeque;

/// `cmpctl <path> -h`.
fn help(path: &[String]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(path)
        .arg("-h")
        .env_remove("CMP_SERVER")
        .env_remove("CMP_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "cmpctl {path:?} -h: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The entries of one section (`Commands:`, `Arguments:`, `Options:`, ...) of a help text, each
/// with its description, which clap puts on the same line or, when the names are long, on the
/// lines below, further indented.
fn entries<'a>(text: &'a str, section: &str) -> Vec<(&'a str, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines().skip_while(|l| *l != section).skip(1).peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() || !line.starts_with(' ') {
            break;
        }
        let trimmed = line.trim_start();
        let (name, mut description) = match trimmed.split_once("  ") {
            Some((name, rest)) => (name, rest.trim().to_string()),
            None => (trimmed, String::new()),
        };
        while let Some(next) = lines.peek() {
            let indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || indent <= 6 {
                break;
            }
            description.push(' ');
            description.push_str(next.trim());
            lines.next();
        }
        found.push((name, description.trim().to_string()));
    }
    found
}

#[test]
fn every_command_and_flag_has_help_and_enum_flags_list_their_values() {
    let mut seen = Vec::new();
    let mut queue: VecDeque<Vec<String>> = VecDeque::from([vec![]]);
    while let Some(path) = queue.pop_front() {
        let text = help(&path);
        let about = text.lines().next().unwrap_or_default();
        assert!(!about.starts_with("Usage:"), "cmpctl {path:?} has no description:\n{text}");
        for (name, description) in entries(&text, "Commands:") {
            assert!(!description.is_empty(), "cmpctl {path:?}: command {name} has no help");
            if name != "help" {
                queue.push_back([&path[..], &[name.to_string()]].concat());
            }
        }
        for section in ["Arguments:", "Options:", "Global options:"] {
            for (name, description) in entries(&text, section) {
                assert!(!description.is_empty(), "cmpctl {path:?}: {name} has no help:\n{text}");
                seen.push((path.join(" "), name.to_string(), description));
            }
        }
    }
    assert!(seen.len() > 100, "walked {} flags only", seen.len());

    // Flags that take one of a few values say which, as the API spells them.
    let values = |command: &str, flag: &str| -> String {
        let (_, _, description) = seen
            .iter()
            .find(|(c, n, _)| c == command && n.starts_with(flag))
            .unwrap_or_else(|| panic!("cmpctl {command} has no {flag}"));
        let list = description.split("[possible values: ").nth(1);
        list.unwrap_or_else(|| panic!("cmpctl {command} {flag}: no values in {description:?}"))
            .trim_end_matches(']')
            .to_string()
    };
    // The server decides which CA kinds exist (cmpctl links no CA; plumbing.rs checks that an
    // unknown kind is refused): the help names them all the same.
    let (_, _, kind) = seen
        .iter()
        .find(|(c, n, _)| c == "adapter create" && n.starts_with("--kind"))
        .unwrap_or_else(|| panic!("cmpctl adapter create has no --kind"));
    assert!(kind.contains("builtin, vault_pki or acme"), "{kind}");
    assert!(kind.contains("[default: builtin]"), "{kind}");
    assert!(values("revoke", "--reason").contains("key_compromise, ca_compromise"));
    assert!(values("request list", "--state").contains("awaiting_approval"));
    assert_eq!(values("request list", "--kind"), "issue, renew, revoke");
    assert!(values("request create", "--key-type").contains("ecdsa_p256"));
    assert!(values("managed create", "--key-type").contains("ed25519"));
    assert_eq!(values("token create", "--role"), "admin, security, developer, agent");
    assert!(values("cert list", "--status").contains("expiring"));
    assert!(values("cert list", "--finding").contains("weak_rsa_key"));
    assert!(values("cert list", "--key-type").contains("ed25519"));
    assert_eq!(values("cert list", "--sort"), "not_after, created_at");
    assert_eq!(values("cert list", "-o, --output"), "table, json");
}
