//! Rules BuildKit checks while parsing: empty continuations, MAINTAINER, FROM's casing and
//! stage names, instruction casing across the file, and description comments.

use super::{CheckConfig, Parsed, Sink, Tree, command_word, lines, rules};

/// The rules of single instructions (and empty continuations), for the nodes before line
/// `until` when the typed parse failed there.
pub(crate) fn check_nodes(
    tree: &Tree,
    config: &CheckConfig,
    sink: &mut Sink,
    until: Option<usize>,
) {
    let parsed = tree;
    for &line in &parsed.empty_continuations {
        sink.report(
            config,
            &rules::NO_EMPTY_CONTINUATION,
            "Empty continuation line".into(),
            (line, line),
        );
    }
    for (i, node) in parsed.nodes.iter().enumerate() {
        if until.is_some_and(|line| node.start_line >= line) {
            break;
        }
        let config = config.with_comments(&parsed.comments[i]);
        let at = lines(node);
        match node.value.as_str() {
            "maintainer" => sink.report(
                &config,
                &rules::MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".into(),
                at,
            ),
            "from" => {
                if let [_, as_word, name] = node.args.as_slice() {
                    if *name != name.to_lowercase() {
                        sink.report(
                            &config,
                            &rules::STAGE_NAME_CASING,
                            format!("Stage name '{name}' should be lowercase"),
                            at,
                        );
                    }
                    let from = command_word(node);
                    // A FROM of mixed case is ConsistentInstructionCasing's business.
                    let as_mismatch = if from == from.to_lowercase() {
                        *as_word != as_word.to_lowercase()
                    } else if from == from.to_uppercase() {
                        *as_word != as_word.to_uppercase()
                    } else {
                        false
                    };
                    if as_mismatch {
                        sink.report(
                            &config,
                            &rules::FROM_AS_CASING,
                            format!("'{as_word}' and '{from}' keywords' casing do not match"),
                            at,
                        );
                    }
                    let stage = name.to_lowercase();
                    description(
                        &parsed.comments[i],
                        "FROM",
                        &[stage.as_str()],
                        &config,
                        at,
                        sink,
                    );
                }
            }
            "arg" => {
                let keys: Vec<&str> = node
                    .args
                    .iter()
                    .map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k))
                    .collect();
                description(&parsed.comments[i], "ARG", &keys, &config, at, sink);
            }
            _ => {}
        }
    }
}

/// The rules over the whole file: stage names and instruction casing.
pub(crate) fn check(parsed: &Parsed, config: &CheckConfig, sink: &mut Sink) {
    stage_names(parsed, config, sink);
    instruction_casing(parsed, config, sink);
}

/// InvalidDefinitionDescription: the comment right above a named stage or an ARG should
/// start with the name it describes.
fn description(
    comments: &[String],
    instruction: &str,
    keys: &[&str],
    config: &CheckConfig,
    at: (usize, usize),
    sink: &mut Sink,
) {
    let (Some(last), Some(first_key)) = (comments.last(), keys.first()) else {
        return;
    };
    let first_word = last.split(' ').next().unwrap_or_default();
    if keys.contains(&first_word) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key
    };
    sink.report(
        config,
        &rules::INVALID_DEFINITION_DESCRIPTION,
        format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
        at,
    );
}

fn stage_names(parsed: &Parsed, config: &CheckConfig, sink: &mut Sink) {
    let mut seen = Vec::new();
    for (index, stage) in parsed.dockerfile.stages.iter().enumerate() {
        let Some(name) = &stage.name else { continue };
        let at = parsed.stage_lines(index);
        if matches!(name.as_str(), "context" | "scratch") {
            sink.report(
                config,
                &rules::RESERVED_STAGE_NAME,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
                at,
            );
        }
        if seen.contains(&name) {
            sink.report(
                config,
                &rules::DUPLICATE_STAGE_NAME,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
                at,
            );
        }
        seen.push(name);
    }
}

/// ConsistentInstructionCasing: instructions of the stages (not the ARGs before the first
/// FROM) should all be written in the case most of them use.
fn instruction_casing(parsed: &Parsed, config: &CheckConfig, sink: &mut Sink) {
    let in_stages: Vec<&crate::ast::Node> = parsed
        .stage_nodes
        .iter()
        .zip(&parsed.instruction_nodes)
        .flat_map(|(from, rest)| std::iter::once(from).chain(rest))
        .map(|&i| &parsed.nodes[i])
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for node in &in_stages {
        let word = command_word(node);
        if word == word.to_lowercase() {
            lower += 1;
        } else if word == word.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in in_stages {
        let word = command_word(node);
        let casing = if majority_lower && word != word.to_lowercase() {
            "lowercase"
        } else if !majority_lower && word != word.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        sink.report(
            config,
            &rules::CONSISTENT_INSTRUCTION_CASING,
            format!("Command '{word}' should match the case of the command majority ({casing})"),
            lines(node),
        );
    }
}
