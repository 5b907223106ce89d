//! `kaizen models`: list, show, versions, alias, history; `register-pretrained` and `pull` live
//! in `hub.rs`, `import` in `transcribe.rs`.

use std::process::ExitCode;

use kaizen_core::{AuditEntry, ModelVersion, RegisteredModel};
use serde_json::json;

use crate::cli::ModelsCommand;
use crate::printer;

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::RegisterPretrained(args) => {
            return super::hub::register_pretrained(args).await;
        }
        ModelsCommand::Pull(args) => return super::hub::pull(args).await,
        ModelsCommand::Import(args) => return super::transcribe::import(args).await,
        ModelsCommand::List { tracking, filter } => {
            let client = super::connect(&tracking).await?;
            let models = client.list_registered_models(&filter).await?;
            if tracking.json {
                printer::json(&json!({
                    "registered_models": models.iter().map(kaizen_wire::registered_model).collect::<Vec<_>>()
                }));
            } else {
                printer::table(
                    &["NAME", "LATEST_VERSION", "ALIASES", "UPDATED"],
                    &list_rows(&models),
                );
            }
        }
        ModelsCommand::Show { tracking, name } => {
            let client = super::connect(&tracking).await?;
            let model = client.get_registered_model(&name).await?;
            if tracking.json {
                printer::json(&json!({"registered_model": kaizen_wire::registered_model(&model)}));
            } else {
                show(&model);
            }
        }
        ModelsCommand::Versions { tracking, name } => {
            let client = super::connect(&tracking).await?;
            let versions = client.list_model_versions(&name).await?;
            if tracking.json {
                printer::json(&json!({
                    "model_versions": versions.iter().map(kaizen_wire::model_version).collect::<Vec<_>>()
                }));
            } else {
                printer::table(
                    &["VERSION", "STAGE", "ALIASES", "RUN_ID", "SOURCE", "CREATED"],
                    &version_rows(&versions),
                );
            }
        }
        ModelsCommand::Alias {
            tracking,
            name,
            alias,
            version,
            delete,
            reason,
        } => {
            let client = super::connect(&tracking).await?;
            let model = client.get_registered_model(&name).await?;
            let previous = model
                .aliases
                .iter()
                .find(|a| a.alias == alias)
                .map(|a| a.version.clone());
            let reason = reason.as_deref();
            if delete {
                if previous.is_none() {
                    return Err(kaizen_core::Error::not_found(format!(
                        "Registered model '{name}' has no alias '{alias}'"
                    ))
                    .into());
                }
                client.delete_alias(&name, &alias, reason).await?;
                if tracking.json {
                    printer::json(&json!({
                        "name": name, "alias": alias, "deleted": true, "previous_version": previous,
                    }));
                } else {
                    println!(
                        "Deleted alias '{alias}' of '{name}' (was version {}).",
                        previous.as_deref().unwrap_or("-")
                    );
                }
            } else {
                let Some(version) = version else {
                    return Err(kaizen_core::Error::invalid(
                        "Give the VERSION to point the alias at, or --delete to remove it",
                    )
                    .into());
                };
                client.set_alias(&name, &alias, &version, reason).await?;
                if tracking.json {
                    printer::json(&json!({
                        "name": name, "alias": alias, "version": version, "previous_version": previous,
                    }));
                } else {
                    match previous {
                        Some(p) if p != version => println!(
                            "Alias '{alias}' of '{name}' moved from version {p} to version {version}."
                        ),
                        Some(_) => println!(
                            "Alias '{alias}' of '{name}' already pointed at version {version}."
                        ),
                        None => {
                            println!("Alias '{alias}' of '{name}' now points at version {version}.")
                        }
                    }
                }
            }
        }
        ModelsCommand::History { tracking, name } => {
            let client = super::connect(&tracking).await?;
            let entries = client.model_history(&name).await?;
            if entries.is_empty() {
                // The log outlives deleted models, so nothing at all means no such model.
                return Err(kaizen_core::Error::not_found(format!(
                    "No history for registered model '{name}': it does not exist and never did"
                ))
                .into());
            }
            if tracking.json {
                printer::json(&json!({
                    "entries": entries.iter().map(kaizen_wire::audit_entry).collect::<Vec<_>>()
                }));
            } else {
                printer::table(
                    &["TIME", "ACTOR", "ACTION", "VERSION", "DETAILS", "REASON"],
                    &history_rows(&entries),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn aliases(model: &RegisteredModel) -> String {
    let mut a: Vec<String> = model
        .aliases
        .iter()
        .map(|a| format!("{}={}", a.alias, a.version))
        .collect();
    a.sort();
    if a.is_empty() {
        "-".into()
    } else {
        a.join(",")
    }
}

fn list_rows(models: &[RegisteredModel]) -> Vec<Vec<String>> {
    models
        .iter()
        .map(|m| {
            let latest = m
                .latest_versions
                .iter()
                .map(|v| v.version)
                .max()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into());
            vec![
                m.name.clone(),
                latest,
                aliases(m),
                printer::time(Some(m.last_updated_timestamp)),
            ]
        })
        .collect()
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

fn version_rows(versions: &[ModelVersion]) -> Vec<Vec<String>> {
    versions
        .iter()
        .map(|v| {
            let mut aliases = v.aliases.clone();
            aliases.sort();
            vec![
                v.version.to_string(),
                v.current_stage.as_str().to_string(),
                if aliases.is_empty() {
                    "-".into()
                } else {
                    aliases.join(",")
                },
                or_dash(v.run_id.as_deref()),
                v.source.clone(),
                printer::time(Some(v.creation_timestamp)),
            ]
        })
        .collect()
}

fn history_rows(entries: &[AuditEntry]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            vec![
                printer::time(Some(e.timestamp)),
                e.actor.clone(),
                e.action.clone(),
                e.version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                or_dash(Some(&e.details)),
                or_dash(e.reason.as_deref()),
            ]
        })
        .collect()
}

fn show(m: &RegisteredModel) {
    println!("Registered model {}", m.name);
    let fields = [
        ("description", or_dash(m.description.as_deref())),
        ("created", printer::time(Some(m.creation_timestamp))),
        ("updated", printer::time(Some(m.last_updated_timestamp))),
    ];
    for (k, v) in fields {
        println!("  {k:<13}{v}");
    }
    let mut alias_rows: Vec<Vec<String>> = m
        .aliases
        .iter()
        .map(|a| vec![a.alias.clone(), a.version.clone()])
        .collect();
    alias_rows.sort();
    printer::section("Aliases", &["ALIAS", "VERSION"], alias_rows);
    let mut latest = m.latest_versions.clone();
    latest.sort_by_key(|v| std::cmp::Reverse(v.version));
    printer::section(
        "Latest versions (per stage)",
        &["VERSION", "STAGE", "STATUS", "RUN_ID", "SOURCE"],
        latest
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.current_stage.as_str().to_string(),
                    or_dash(Some(&v.status)),
                    or_dash(v.run_id.as_deref()),
                    v.source.clone(),
                ]
            })
            .collect(),
    );
    let mut tags: Vec<Vec<String>> = m
        .tags
        .iter()
        .map(|t| vec![t.key.clone(), t.value.clone()])
        .collect();
    tags.sort();
    printer::section("Tags", &["KEY", "VALUE"], tags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_core::ModelAlias;

    #[test]
    fn alias_cells_are_sorted() {
        let m = RegisteredModel {
            name: "m".into(),
            creation_timestamp: 0,
            last_updated_timestamp: 0,
            description: None,
            latest_versions: vec![],
            tags: vec![],
            aliases: vec![
                ModelAlias {
                    alias: "prod".into(),
                    version: "2".into(),
                },
                ModelAlias {
                    alias: "champion".into(),
                    version: "3".into(),
                },
            ],
        };
        assert_eq!(aliases(&m), "champion=3,prod=2");
        assert_eq!(list_rows(&[m])[0][1], "-");
    }
}
