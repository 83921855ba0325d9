fn main() {
    use dockhand::load::*;
    let kind = if std::env::args().nth(1).as_deref() == Some("repo") { schema::FileKind::Repo } else { schema::FileKind::Stack };
    if std::env::args().nth(2).is_none() { print!("{}", schema::schema_text(kind)); return; }
    let dir = std::env::args().nth(2).unwrap();
    let mut files = vec![];
    for p in ["dockhand.yaml", "stacks/a.yaml"] { if let Ok(t) = std::fs::read_to_string(format!("{dir}/{p}")) { files.push(SourceFile{path: p.into(), text: t}); } }
    match load(&files) { Ok(d) => println!("{d:#?}"), Err(e) => println!("{e}") }
}
