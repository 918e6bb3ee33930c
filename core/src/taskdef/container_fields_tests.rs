//! The extended container fields' validation (`container_fields`), each problem at its path.

use crate::taskdef::decode;

fn errors(json: &str) -> Vec<String> {
    let mut td = decode(json).unwrap().task_definition;
    match crate::taskdef::normalize(&mut td) {
        Ok(_) => vec![],
        Err(e) => e
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

#[test]
fn the_whole_container_is_accepted() {
    let e = errors(
        r#"{"family":"f","pidMode":"task","ipcMode":"none","containerDefinitions":[{"name":"a","image":"i","memory":64,
          "ulimits":[{"name":"nofile","softLimit":4096,"hardLimit":8192}],
          "linuxParameters":{"initProcessEnabled":true,"capabilities":{"drop":["ALL"]},
             "tmpfs":[{"containerPath":"/scratch","size":16,"mountOptions":["noexec"]}],"maxSwap":0,"swappiness":10},
          "readonlyRootFilesystem":true,"extraHosts":[{"hostname":"db","ipAddress":"10.0.0.9"}],
          "dnsServers":["10.0.0.2"],"hostname":"web-1","systemControls":[{"namespace":"net.core.somaxconn","value":"1024"}],
          "logConfiguration":{"logDriver":"json-file","options":{"max-size":"1m"}},
          "restartPolicy":{"enabled":true,"ignoredExitCodes":[0],"restartAttemptPeriod":60},
          "links":["b:backend"]},{"name":"b","image":"i"}]}"#,
    );
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn each_problem_names_its_field() {
    let e = errors(
        r#"{"family":"f","pidMode":"shared","containerDefinitions":[{"name":"a","image":"i",
          "ulimits":[{"name":"files","softLimit":1,"hardLimit":2},{"name":"nofile","softLimit":9,"hardLimit":2}],
          "linuxParameters":{"tmpfs":[{"containerPath":"tmp"}],"swappiness":101,"maxSwap":10},
          "extraHosts":[{"hostname":"db","ipAddress":"nope"}],
          "logConfiguration":{"logDriver":"etwlogs"},
          "restartPolicy":{"restartAttemptPeriod":5},
          "resourceRequirements":[{"type":"GPU","value":"x"}],
          "links":["ghost"]}]}"#,
    );
    let paths: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
    for want in [
        "pidMode",
        "containerDefinitions[0].ulimits[0].name",
        "containerDefinitions[0].ulimits[1].softLimit",
        "containerDefinitions[0].linuxParameters.tmpfs[0].containerPath",
        "containerDefinitions[0].linuxParameters.tmpfs[0].size",
        "containerDefinitions[0].linuxParameters.swappiness",
        "containerDefinitions[0].linuxParameters.maxSwap",
        "containerDefinitions[0].extraHosts[0].ipAddress",
        "containerDefinitions[0].logConfiguration.logDriver",
        "containerDefinitions[0].restartPolicy.restartAttemptPeriod",
        "containerDefinitions[0].resourceRequirements[0].value",
        "containerDefinitions[0].links[0]",
    ] {
        assert!(paths.contains(&want), "{want} missing from {e:#?}");
    }
}

#[test]
fn awsvpc_refuses_a_port_two_containers_listen_on_naming_both() {
    let e = errors(
        r#"{"family":"f","networkMode":"awsvpc","containerDefinitions":[
          {"name":"app","image":"i","portMappings":[{"containerPort":80}]},
          {"name":"proxy","image":"i","portMappings":[{"containerPort":80}]}]}"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("containerDefinitions[1].portMappings[0].containerPort"),
        "{e:?}"
    );
    assert!(
        e[0].contains("\"app\"") && e[0].contains("\"proxy\""),
        "{e:?}"
    );
}
