//! Conversion rules (docker's dispatch semantics), checked on the converted graph and stage
//! config without executing anything. Base images come from an in-memory table.

use std::cell::RefCell;
use std::collections::BTreeMap;

use builder_dockerfile2graph::{ConvertOptions, ImageResolver, ResolvedImage, convert};
use builder_graph::Op;
use builder_graph::image::{ImageSpec, Platform};
use builder_store::Digest;

/// Known base images by name; records which names were asked for.
struct Table {
    images: BTreeMap<String, ImageSpec>,
    asked: RefCell<Vec<String>>,
}

impl Table {
    fn new() -> Table {
        Table {
            images: BTreeMap::new(),
            asked: RefCell::new(Vec::new()),
        }
    }
    fn with(mut self, name: &str, f: impl FnOnce(&mut ImageSpec)) -> Table {
        let mut spec = ImageSpec::scratch(Platform::host());
        f(&mut spec);
        self.images.insert(name.to_string(), spec);
        self
    }
}

impl ImageResolver for Table {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, String> {
        self.asked.borrow_mut().push(reference.to_string());
        let spec = self
            .images
            .get(reference)
            .cloned()
            .ok_or_else(|| format!("no image {reference}"))?;
        Ok(ResolvedImage {
            reference: reference.into(),
            manifest_digest: Digest::of(reference.as_bytes()),
            spec,
        })
    }
}

fn conv(
    dockerfile: &str,
    table: &Table,
    args: &[(&str, &str)],
    target: Option<&str>,
) -> Result<builder_dockerfile2graph::ConvertedBuild, String> {
    let df = builder_frontend::parse_dockerfile(dockerfile.as_bytes(), "Dockerfile")
        .map_err(|e| e.to_string())?;
    let options = ConvertOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(str::to_string),
        file_name: "Dockerfile".into(),
        ..ConvertOptions::default()
    };
    convert(&df, &options, table).map_err(|e| e.to_string())
}

fn env_of(spec: &ImageSpec) -> Vec<String> {
    spec.env_list()
}

#[test]
fn global_args_reach_from_and_stage_redeclaration() {
    let table = Table::new().with("base:2", |_| {});
    let out = conv(
        "ARG V=1\nFROM base:${V}\nARG V\nENV GOT=$V\n",
        &table,
        &[("V", "2")],
        None,
    )
    .unwrap();
    assert_eq!(table.asked.borrow().as_slice(), ["base:2"]);
    assert!(env_of(&out.target.spec).contains(&"GOT=2".to_string()));
}

#[test]
fn undeclared_global_arg_is_invisible_in_stage() {
    let out = conv(
        "ARG V=1\nFROM scratch\nENV GOT=x${V}x\n",
        &Table::new(),
        &[],
        None,
    )
    .unwrap();
    assert!(env_of(&out.target.spec).contains(&"GOT=xx".to_string()));
}

#[test]
fn env_wins_over_arg_and_args_are_not_persisted() {
    let out = conv(
        "FROM scratch\nARG A=arg\nENV A=env\nENV B=$A\n",
        &Table::new(),
        &[],
        None,
    )
    .unwrap();
    let env = env_of(&out.target.spec);
    assert!(env.contains(&"B=env".to_string()), "{env:?}");
    let out = conv("FROM scratch\nARG ONLY=x\n", &Table::new(), &[], None).unwrap();
    assert!(
        !env_of(&out.target.spec)
            .iter()
            .any(|e| e.starts_with("ONLY="))
    );
}

#[test]
fn unused_build_args_are_reported() {
    let out = conv(
        "FROM scratch\nARG USED\n",
        &Table::new(),
        &[("USED", "1"), ("EXTRA", "2"), ("HTTP_PROXY", "p")],
        None,
    )
    .unwrap();
    assert_eq!(out.unused_build_args, vec!["EXTRA".to_string()]);
}

#[test]
fn entrypoint_clears_inherited_cmd_but_not_own() {
    let table = Table::new().with("img", |s| s.cmd = Some(vec!["inherited".into()]));
    let out = conv("FROM img\nENTRYPOINT [\"e\"]\n", &table, &[], None).unwrap();
    assert_eq!(out.target.spec.cmd, None);
    let out = conv(
        "FROM img\nCMD [\"mine\"]\nENTRYPOINT [\"e\"]\n",
        &table,
        &[],
        None,
    )
    .unwrap();
    assert_eq!(out.target.spec.cmd, Some(vec!["mine".to_string()]));
}

#[test]
fn shell_form_uses_current_shell() {
    let out = conv(
        "FROM scratch\nSHELL [\"/bin/bash\", \"-lc\"]\nCMD echo hi\n",
        &Table::new(),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(
        out.target.spec.cmd,
        Some(vec!["/bin/bash".into(), "-lc".into(), "echo hi".into()])
    );
}

#[test]
fn onbuild_triggers_of_the_base_run_once_and_are_not_inherited() {
    let table = Table::new().with("parent", |s| {
        s.on_build = vec!["ENV TRIGGERED=yes".into(), "WORKDIR /trig".into()]
    });
    let out = conv("FROM parent\nENV AFTER=1\n", &table, &[], None).unwrap();
    let spec = &out.target.spec;
    assert!(env_of(spec).contains(&"TRIGGERED=yes".to_string()));
    assert_eq!(spec.working_dir, "/trig");
    assert!(
        spec.on_build.is_empty(),
        "triggers are consumed: {:?}",
        spec.on_build
    );
}

#[test]
fn stages_not_needed_by_the_target_are_not_converted() {
    let table = Table::new().with("needed", |_| {});
    let dockerfile = "FROM missing-image AS unused\nRUN never\nFROM needed AS used\nFROM used\nCOPY --from=used /x /y\n";
    conv(dockerfile, &table, &[], None).unwrap();
    assert_eq!(
        table.asked.borrow().as_slice(),
        ["needed"],
        "the unused stage's base is never resolved"
    );
    // Targeting the unused stage does need its base.
    let err = conv(dockerfile, &table, &[], Some("unused")).unwrap_err();
    assert!(
        err.contains("Dockerfile:1") && err.contains("no image missing-image"),
        "{err}"
    );
}

#[test]
fn copy_from_an_image_adds_an_image_source() {
    let table = Table::new().with("tools:1", |_| {});
    let out = conv(
        "FROM scratch\nCOPY --from=tools:1 /bin/tool /tool\n",
        &table,
        &[],
        None,
    )
    .unwrap();
    let needed = out.graph.needed_for(out.target.vertex);
    assert!(
        needed
            .iter()
            .any(|v| matches!(&out.graph.vertex(*v).op, Op::Image(i) if i.reference == "tools:1"))
    );
}

#[test]
fn workdir_is_relative_to_the_previous_one_and_creates_a_layer_step() {
    let out = conv(
        "FROM scratch\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c\n",
        &Table::new(),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(out.target.spec.working_dir, "/a/c");
    assert_eq!(out.target.layer_history.len(), 3);
}

#[test]
fn run_env_includes_declared_args_and_history_names_them() {
    let out = conv(
        "FROM scratch\nARG A=1\nRUN true\n",
        &Table::new(),
        &[],
        None,
    )
    .unwrap();
    let Op::Exec(exec) = &out.graph.vertex(out.target.vertex).op else {
        panic!("last op is RUN")
    };
    assert!(exec.env.contains(&"A=1".to_string()));
    let last = out.target.spec.history.last().unwrap();
    assert_eq!(last.created_by, "RUN |1 A=1 /bin/sh -c true # buildkit");
}

/// BuildKit has no rule that several sources need a destination ending in `/`: each source
/// lands in the destination when it is a directory by the time it is copied (an existing one,
/// or one an earlier source made), so that is decided when copying, not here.
#[test]
fn several_sources_are_placed_when_copying() {
    let out = conv("FROM scratch\nCOPY a b /dest\n", &Table::new(), &[], None).unwrap();
    let Op::File(file) = &out.graph.vertex(out.target.vertex).op else {
        panic!("COPY is a file op");
    };
    let [builder_graph::FileAction::Copy(copy)] = file.actions.as_slice() else {
        panic!("one copy action: {:?}", file.actions);
    };
    assert_eq!(copy.sources, ["a", "b"]);
    assert!(!copy.dest_is_dir);
}

#[test]
fn circular_stage_references_are_errors() {
    let err = conv(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
        &Table::new(),
        &[],
        Some("b"),
    )
    .unwrap_err();
    assert!(
        err.contains("needs to be defined before current stage") || err.contains("circular"),
        "{err}"
    );
}
