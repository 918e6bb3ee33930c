//! The rules of a task definition's volumes and of its containers' `mountPoints`,
//! `volumesFrom`, `secrets` and `repositoryCredentials` (what a container takes from outside its
//! image), as ECS states them; `normalize` calls `check` and fills ECS's default scope.

use crate::error::{quote, FieldError};
use berth_proto::v1::TaskDefinition;
use std::collections::HashSet;

/// ECS's rule for a volume name: up to 255 letters, digits, hyphens and underscores.
fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Every problem with the volumes and mounts of `td`; fills `scope` with ECS's default, task.
pub fn check(td: &mut TaskDefinition, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, v) in td.volumes.iter_mut().enumerate() {
        let p = format!("volumes[{i}]");
        if !good_name(&v.name) {
            errs.push(FieldError::new(
                format!("{p}.name"),
                format!(
                    "{} must be 1-255 letters, digits, hyphens or underscores",
                    quote(&v.name)
                ),
            ));
        } else if !names.insert(v.name.clone()) {
            errs.push(FieldError::new(
                format!("{p}.name"),
                format!("duplicate volume name {}", quote(&v.name)),
            ));
        }
        if v.host.is_some() && v.docker_volume_configuration.is_some() {
            errs.push(FieldError::new(
                &p,
                "give host or dockerVolumeConfiguration, not both",
            ));
        }
        if let Some(h) = &v.host {
            if !h.source_path.is_empty() && !h.source_path.starts_with('/') {
                errs.push(FieldError::new(
                    format!("{p}.host.sourcePath"),
                    format!("{} must be an absolute path", quote(&h.source_path)),
                ));
            }
        }
        if let Some(d) = &mut v.docker_volume_configuration {
            if d.scope.is_empty() {
                d.scope = "task".into();
            }
            match d.scope.as_str() {
                "task" if d.autoprovision.is_some() => errs.push(FieldError::new(
                    format!("{p}.dockerVolumeConfiguration.autoprovision"),
                    "applies only to scope shared (a task volume is always made for its task)",
                )),
                "task" | "shared" => {}
                other => errs.push(FieldError::new(
                    format!("{p}.dockerVolumeConfiguration.scope"),
                    format!("{} must be task or shared", quote(other)),
                )),
            }
        }
    }
    let containers: HashSet<&str> = td
        .container_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for (i, c) in td.container_definitions.iter().enumerate() {
        for (j, m) in c.mount_points.iter().enumerate() {
            let p = format!("containerDefinitions[{i}].mountPoints[{j}]");
            if !names.contains(&m.source_volume) {
                errs.push(FieldError::new(
                    format!("{p}.sourceVolume"),
                    format!(
                        "{} is not a volume of the task; declare it in volumes[]",
                        quote(&m.source_volume)
                    ),
                ));
            }
            if !m.container_path.starts_with('/') {
                errs.push(FieldError::new(
                    format!("{p}.containerPath"),
                    format!(
                        "{} must be an absolute path in the container",
                        quote(&m.container_path)
                    ),
                ));
            }
        }
        for (j, s) in c.secrets.iter().enumerate() {
            let p = format!("containerDefinitions[{i}].secrets[{j}]");
            if s.name.is_empty() {
                errs.push(FieldError::new(
                    format!("{p}.name"),
                    "is required (the environment variable to set)",
                ));
            }
            if s.value_from.is_empty() {
                errs.push(FieldError::new(
                    format!("{p}.valueFrom"),
                    "is required (a secret's ARN or name, or a parameter's name or ARN)",
                ));
            }
        }
        if let Some(r) = &c.repository_credentials {
            if r.credentials_parameter.is_empty() {
                errs.push(FieldError::new(
                    format!("containerDefinitions[{i}].repositoryCredentials.credentialsParameter"),
                    "is required (a secret holding {\"username\",\"password\"})",
                ));
            }
        }
        for (j, f) in c.volumes_from.iter().enumerate() {
            let p = format!("containerDefinitions[{i}].volumesFrom[{j}].sourceContainer");
            if f.source_container == c.name {
                errs.push(FieldError::new(
                    p,
                    "a container cannot take its own volumes",
                ));
            } else if !containers.contains(f.source_container.as_str()) {
                errs.push(FieldError::new(
                    p,
                    format!(
                        "{} is not a container of the task",
                        quote(&f.source_container)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::taskdef::{decode, normalize};

    fn problems(json: &str) -> Vec<String> {
        let mut td = decode(json).unwrap().task_definition;
        match normalize(&mut td) {
            Ok(_) => Vec::new(),
            Err(errs) => errs.into_iter().map(|e| e.path).collect(),
        }
    }

    #[test]
    fn mounts_must_name_volumes_and_containers_of_the_task() {
        let p = problems(
            r#"{"family":"f","volumes":[{"name":"data","dockerVolumeConfiguration":{"scope":"global"}},
                {"name":"data"},{"name":"h","host":{"sourcePath":"rel"}}],
               "containerDefinitions":[{"name":"a","image":"i","memory":8,
                 "mountPoints":[{"sourceVolume":"nope","containerPath":"data"}],
                 "volumesFrom":[{"sourceContainer":"b"}]}]}"#,
        );
        assert_eq!(
            p,
            vec![
                "volumes[0].dockerVolumeConfiguration.scope",
                "volumes[1].name",
                "volumes[2].host.sourcePath",
                "containerDefinitions[0].mountPoints[0].sourceVolume",
                "containerDefinitions[0].mountPoints[0].containerPath",
                "containerDefinitions[0].volumesFrom[0].sourceContainer",
            ]
        );
    }

    #[test]
    fn scope_defaults_to_task_and_autoprovision_needs_shared() {
        let ok = r#"{"family":"f","volumes":[{"name":"d","dockerVolumeConfiguration":{}}],
            "containerDefinitions":[{"name":"a","image":"i","memory":8,
              "mountPoints":[{"sourceVolume":"d","containerPath":"/d"}]}]}"#;
        let mut td = decode(ok).unwrap().task_definition;
        normalize(&mut td).unwrap();
        let d = td.volumes[0].docker_volume_configuration.as_ref().unwrap();
        assert_eq!(d.scope, "task");
        let bad = ok.replace("{}}]", r#"{"autoprovision":true}}]"#);
        assert_eq!(
            problems(&bad),
            vec!["volumes[0].dockerVolumeConfiguration.autoprovision"]
        );
    }
}
