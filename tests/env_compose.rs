//! Issue 19, item 4: env files mean what `docker compose` makes of them. Each file of a corpus of
//! tricky env files is given to compose (`docker compose config`, installed by
//! scripts/test-env.sh) and to dockhand's parser, and the two environments are compared key by
//! key; then the three findings are deployed on the real Engine and the container's
//! environment compared with compose's. Fails (never skips) without compose or an Engine.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

const STATE: &str = "/var/tmp/dockhand-test-env";

/// Name and bytes of each corpus file.
const CORPUS: &[(&str, &str)] = &[
    ("plain", "A=1\nB=two words\nC=\n"),
    ("comments", "# header\n\nA=value # a comment\nB=val#not-a-comment\n  # indented\nC=x\n"),
    ("export", "export A=exported\nexport B=\"quoted\"\n"),
    ("single_quotes", "A='literal $B # kept \\n'\nB='with \"double\" inside'\n"),
    ("double_quote_escapes", "A=\"line1\\nline2\"\nB=\"say \\\"hi\\\"\"\nC=\"back\\\\slash\"\n"),
    ("multiline_certificate", "CERT=\"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nQ2VydA==\n-----END CERTIFICATE-----\"\nAFTER=1\n"),
    ("multiline_single", "KEY='first\nsecond'\nZ=1\n"),
    ("bom", "\u{feff}FIRST=kept\nSECOND=2\n"),
    ("crlf", "A=1\r\nB=\"two\"\r\nC=three # c\r\n"),
    ("spaces", "A=  padded  \nB = around\n  C=indented\n"),
    ("equals_in_value", "URL=postgres://u:p@db:5432/app?sslmode=disable&a=b\n"),
    ("quoted_then_comment", "A=\"x\" # c\nB='y' # c\n"),
    ("interpolation", "A=base\nB=${A}-suffix\nC=\"${A}\"\nD='${A}'\n"),
    ("repeated", "A=first\nA=second\n"),
    ("empty_quotes", "A=\"\"\nB=''\n"),
    ("escapes_compose_knows", "A=\"tab\\there \\a\\b\\f\\v \\r\"\nB=\"dollar \\$A kept \\q \\x41\"\nC=unquoted\\nstays\n"),
    ("colon_and_defaults", "A: colon\nB=${UNSET_IN_FILE:-fallback}\nC=${A-other}\nD=${UNSET_IN_FILE}\nE=$A/path\n"),
    ("comment_needs_a_space", "A=v\t# tab is not a comment start\nB=x#y #z\n"),
    ("after_closing_quote", "A=\"x\"junk\nB='y' trailing\n"),
    ("crlf_inside_quotes", "A=\"x\r\ny\"\r\nB=1\r\n"),
    ("hash_in_quotes", "A=\"#not comment\"\nB='# nor this'\n"),
];

fn compose() -> String {
    let local = format!("{STATE}/bin/docker-compose");
    assert!(
        std::path::Path::new(&local).exists(),
        "{local} is missing: run scripts/test-env.sh"
    );
    local
}

/// What compose gives a service whose `env_file` is `file`.
fn compose_env(dir: &std::path::Path, file: &str) -> BTreeMap<String, String> {
    let yml = dir.join(format!("{file}.compose.yml"));
    std::fs::write(
        &yml,
        format!("services:\n  s:\n    image: busybox\n    env_file: {file}.env\n"),
    )
    .unwrap();
    let out = Command::new(compose())
        .args(["-f", yml.to_str().unwrap(), "config", "--format", "json"])
        // A clean environment, so `${VAR}` resolves from the file alone on both sides.
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compose config for {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = doc["services"]["s"]["environment"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    env.into_iter()
        .map(|(k, v)| {
            // `config` prints a model again, with `$` escaped as `$$`.
            let v = v.as_str().unwrap_or_default().replace("$$", "$");
            (k, v)
        })
        .collect()
}

#[test]
fn env_files_give_the_values_compose_gives_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in CORPUS {
        std::fs::write(dir.path().join(format!("{name}.env")), text).unwrap();
    }
    let mut mismatches = Vec::new();
    for (name, text) in CORPUS {
        let expected = compose_env(dir.path(), name);
        assert!(!expected.is_empty(), "{name}: compose read nothing");
        let ours: BTreeMap<String, String> = dockhand::host::parse_env_file(text)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_iter()
            .collect();
        if ours != expected {
            mismatches.push(format!(
                "{name}:\n  compose  {expected:?}\n  dockhand {ours:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// What dockhand cannot read the way compose does is refused by line number; compose itself
/// reads the first two (a bare key inherits from the shell, `:?` fails only when unset), so dockhand
/// must not guess.
#[test]
fn env_file_lines_dockhand_cannot_read_as_compose_are_errors_naming_the_line() {
    for (text, line) in [
        ("A=1\nBARE_KEY\n", 2),
        ("A=1\nB=2\nC=${A:?required}\n", 3),
        ("A=\"never closed\nB=2\n", 1),
    ] {
        let e = dockhand::host::parse_env_file(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
    }
}

/// The findings of issue 19 (a comment after a value kept in it, a certificate cut to its
/// first line with a stray quote, a byte order mark swallowing the first key), deployed: the
/// container's environment holds exactly what compose gives for the same file.
#[test]
fn a_deployed_container_gets_the_environment_compose_gives() {
    let s = support::Stack::new("envcompose");
    let img = s.image("v1");
    let file = s.path().join("app.env");
    let text = "\u{feff}FIRST=after-bom\nMODE=production # the comment\nCERT=\"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\"\nexport EMPTY=\n";
    std::fs::write(&file, text).unwrap();
    std::fs::write(s.path().join("app.env.compose-copy.env"), text).unwrap();
    let expected = compose_env(s.path(), "app.env.compose-copy");
    assert_eq!(expected.len(), 4, "{expected:?}");
    s.write(&format!(
        "services:\n  app:\n    image: {img}\n    env_file: {}\n    stop_grace_period: 1s\n",
        file.display()
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let env = support::docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &s.container("app"),
    ]);
    let env: Vec<String> = serde_json::from_str(&env).unwrap();
    let got: BTreeMap<String, String> = env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| expected.contains_key(*k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, expected);
}
