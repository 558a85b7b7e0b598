//! Deep stage graphs convert without recursing once per stage: a chain of 10,000 stages, each
//! `FROM` the previous one or `COPY --from` it, used to overflow the stack (2,200 stages were
//! enough on the main thread's 8 MiB; test threads have 2 MiB, so these fail fast without the
//! fix). The end-to-end builds are in the workspace's `tests/deep_stage_graphs.rs`.

use builder_dockerfile2graph::{ConvertOptions, ImageResolver, ResolvedImage, convert};
use builder_graph::Op;
use builder_graph::image::Platform;

const STAGES: usize = 10_000;

/// No base images: every chain starts from scratch.
struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, String> {
        Err(format!("no image {reference}"))
    }
}

fn conv(dockerfile: &str) -> builder_dockerfile2graph::ConvertedBuild {
    let df = builder_frontend::parse_dockerfile(dockerfile.as_bytes(), "Dockerfile").unwrap();
    let options = ConvertOptions {
        file_name: "Dockerfile".into(),
        ..ConvertOptions::default()
    };
    convert(&df, &options, &NoImages).unwrap()
}

/// `FROM scratch AS s0`, `COPY f /f`, then `FROM s{i-1} AS s{i}` up to `s{n-1}`.
pub fn from_chain(n: usize) -> String {
    let mut df = String::from("FROM scratch AS s0\nCOPY f /f\n");
    for i in 1..n {
        df.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    df
}

/// `FROM scratch AS s0`, `COPY f /f`, then stages `FROM scratch AS s{i}` that each
/// `COPY --from=s{i-1} /f /f`.
pub fn copy_from_chain(n: usize) -> String {
    let mut df = String::from("FROM scratch AS s0\nCOPY f /f\n");
    for i in 1..n {
        df.push_str(&format!(
            "FROM scratch AS s{i}\nCOPY --from=s{} /f /f\n",
            i - 1
        ));
    }
    df
}

#[test]
fn a_from_chain_of_10000_stages_converts() {
    let out = conv(&from_chain(STAGES));
    // Every stage is the first one's COPY step: the target's vertex is that step.
    let needed = out.graph.needed_for(out.target.vertex);
    assert_eq!(needed.len(), 3, "scratch, context and the COPY step");
    assert_eq!(out.target.name, format!("s{}", STAGES - 1));
    assert_eq!(out.target.spec.history.len(), 1);
}

#[test]
fn a_copy_from_chain_of_10000_stages_converts() {
    let out = conv(&copy_from_chain(STAGES));
    let needed = out.graph.needed_for(out.target.vertex);
    let copies = needed
        .iter()
        .filter(|v| matches!(out.graph.vertex(**v).op, Op::File(_)))
        .count();
    assert_eq!(copies, STAGES, "one COPY per stage, all needed by the last");
    // The chain is walked in order: each COPY reads the previous stage's COPY.
    let mut v = out.target.vertex;
    for _ in 1..STAGES {
        let inputs = &out.graph.vertex(v).inputs;
        assert_eq!(
            inputs.len(),
            2,
            "the stage's scratch and the copied-from stage"
        );
        v = inputs[1];
    }
    assert!(
        out.graph
            .vertex(v)
            .inputs
            .iter()
            .any(|i| matches!(out.graph.vertex(*i).op, Op::Context))
    );
}

#[test]
fn a_stage_resumes_after_the_stages_it_copies_from() {
    // A stage that needs two unconverted stages mid-way keeps what it did before each.
    let df = "FROM scratch AS a\nCOPY f /a\nFROM scratch AS b\nCOPY f /b\n\
              FROM scratch AS c\nENV X=1\nCOPY --from=a /a /a\nENV Y=2\n\
              RUN --mount=from=b,target=/m true\nENV Z=3\n";
    let out = conv(df);
    let env = out.target.spec.env_list();
    assert_eq!(env[env.len() - 3..], ["X=1", "Y=2", "Z=3"]);
    assert_eq!(out.target.spec.history.len(), 5);
    assert_eq!(out.stage_steps["a"].len(), 1);
    assert_eq!(out.stage_steps["b"].len(), 1);
    // Only the COPY and the RUN can add layers.
    assert_eq!(out.stage_steps["c"].len(), 2);
}
