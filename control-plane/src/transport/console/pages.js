// Pages: clusters, task definitions, tasks and nodes. Each page builds its forms once and
// returns `refresh`, which redraws only the live part (the app calls it every 1.5 s).
"use strict";

const PAGES = {};

PAGES.clusters = (root) => {
  const name = h("input", { id: "cluster-name", placeholder: "name" });
  const list = h("div", { id: "cluster-list" });
  const schedules = h("div", { id: "schedule-list" });
  const create = async (ev) => {
    ev.preventDefault();
    const r = await act(() => api("Clusters/CreateCluster", { clusterName: name.value.trim() }));
    if (r) {
      name.value = "";
      await refreshClusterSelect(r.cluster.clusterName);
      await refresh();
    }
  };
  root.append(
    h("h2", {}, "Clusters"),
    h("section", {}, h("form", { class: "row", onsubmit: create },
      h("label", { class: "field" }, "New cluster", name),
      h("button", { id: "cluster-create", type: "submit" }, "Create"))),
    h("section", {}, list),
    h("h3", {}, "Scheduled tasks in the selected cluster"),
    h("section", {}, schedules));
  async function refresh() {
    // The schedules are extra: a failure there leaves the clusters' list standing.
    await refreshSchedules().catch(() => schedules.replaceChildren());
    const r = await api("Clusters/ListClusters", {});
    list.replaceChildren(table(
      ["Name", "Status", "Services", "Running", "Pending", "Nodes", "Created", ""],
      r.clusters.map((c) => h("tr", { "data-name": c.clusterName },
        h("td", {}, c.clusterName), h("td", {}, stateSpan(c.status)),
        h("td", {}, c.activeServicesCount), h("td", {}, c.runningTasksCount),
        h("td", {}, c.pendingTasksCount), h("td", {}, c.registeredContainerInstancesCount),
        h("td", { class: "muted" }, c.createdAt),
        h("td", {}, c.status === "ACTIVE" ? confirmButton("Delete", "delete-cluster", async () => {
          await api("Clusters/DeleteCluster", { cluster: c.clusterName });
          await refreshClusterSelect();
          await refresh();
        }) : "")))));
  }
  // EventBridge rules and Scheduler schedules whose targets run here: next and last runs.
  async function refreshSchedules() {
    const r = await api("Tasks/ListSchedules", { cluster: currentCluster() });
    const outcome = (run) => !run ? "-" : [
      ...(run.tasks || []).map((t) => `${shortId(t.taskArn)} ${t.lastStatus}` +
        ((t.containers || []).some((c) => c.exitCode !== undefined)
          ? ` exit ${(t.containers || []).find((c) => c.exitCode !== undefined).exitCode}` : "")),
      ...(run.failures || [])].join("; ") || "-";
    schedules.replaceChildren(table(
      ["Name", "Kind", "Expression", "State", "Next run", "Last run", "Last tasks"],
      (r.schedules || []).map((v) => h("tr", { "data-name": v.schedule.name },
        h("td", {}, v.schedule.name), h("td", {}, v.schedule.kind),
        h("td", {}, v.schedule.expression), h("td", {}, stateSpan(v.schedule.state)),
        h("td", { class: "muted" }, (v.nextRuns || [])[0] || "-"),
        h("td", { class: "muted" }, (v.runs || [])[0] ? v.runs[0].tick : "-"),
        h("td", {}, outcome((v.runs || [])[0]))))));
  }
  return { refresh };
};

PAGES.taskdefs = (root) => {
  const json = h("textarea", { id: "taskdef-json", spellcheck: "false",
    placeholder: '{"family": "web", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", ...}]}' });
  const file = h("input", { type: "file", accept: ".json,application/json" });
  const result = h("div", { id: "taskdef-result", class: "notice" });
  const all = h("input", { type: "checkbox", id: "taskdef-all" });
  const list = h("div", { id: "taskdef-list" });
  file.addEventListener("change", async () => {
    if (file.files.length) json.value = await file.files[0].text();
  });
  const register = async (ev) => {
    ev.preventDefault();
    result.textContent = "";
    const r = await act(() => api("TaskDefinitions/RegisterTaskDefinition",
      { taskDefinitionJson: json.value }));
    if (!r) return;
    const td = r.taskDefinition;
    let text = `Registered ${td.family}:${td.revision}`;
    if (r.ignoredFields.length) text += `\nIgnored (AWS-only): ${r.ignoredFields.join(", ")}`;
    if (r.warnings.length) text += `\n${r.warnings.join("\n")}`;
    result.textContent = text;
    await refresh();
  };
  all.addEventListener("change", () => refresh());
  root.append(
    h("h2", {}, "Task definitions"),
    h("section", {}, h("form", { onsubmit: register },
      h("h3", {}, "Register (ECS JSON, as for aws ecs register-task-definition)"),
      json,
      h("div", { class: "row" }, file,
        h("button", { id: "taskdef-register", type: "submit" }, "Register")),
      result)),
    h("section", {},
      h("label", {}, all, " show deregistered revisions"),
      list));
  async function refresh() {
    const r = await api("TaskDefinitions/ListTaskDefinitions",
      { status: all.checked ? "ALL" : "ACTIVE" });
    list.replaceChildren(table(
      ["Family:revision", "Status", "Containers", "CPU / memory", "Registered", ""],
      r.taskDefinitions.map((td) => {
        const id = `${td.family}:${td.revision}`;
        return h("tr", { "data-name": id },
          h("td", { class: "mono" }, id), h("td", {}, stateSpan(td.status)),
          h("td", {}, td.containerDefinitions.map((c) => h("div", {}, `${c.name} `,
            h("span", { class: "muted" }, c.image)))),
          h("td", {}, `${td.cpu || "-"} / ${td.memory || "-"}`),
          h("td", { class: "muted" }, td.registeredAt),
          h("td", {}, td.status === "ACTIVE" ? confirmButton("Deregister", "deregister", async () => {
            await api("TaskDefinitions/DeregisterTaskDefinition", { taskDefinition: id });
            await refresh();
          }) : ""));
      })));
  }
  return { refresh };
};

// Node id → address, for links to what tasks publish.
async function nodeAddresses() {
  const r = await api("Nodes/ListNodes", {});
  const m = new Map();
  for (const n of r.containerInstances) m.set(n.containerInstanceArn, n);
  return m;
}

// The rows of a task table: status, health, exit codes, bindings (links), node, stop, logs.
function taskRows(tasks, nodes, { onStop, onLogs }) {
  return tasks.map((t) => {
    const node = nodes.get(t.containerInstanceArn);
    const host = node && node.address ? node.address : location.hostname;
    const bindings = t.containers.flatMap((c) => c.networkBindings.map((b) =>
      h("div", {}, `${c.name}:${b.containerPort} → `, hostLink(host, b.hostPort, "task-address"))));
    const containers = t.containers.map((c) => h("div", {}, `${c.name} `, stateSpan(c.lastStatus),
      c.exitCode !== undefined && c.exitCode !== null ? ` exit ${c.exitCode}` : "",
      c.reason ? h("span", { class: "muted" }, ` ${c.reason}`) : ""));
    return h("tr", { class: "task", "data-id": shortId(t.taskArn), "data-status": t.lastStatus },
      h("td", { class: "mono" }, shortId(t.taskArn)),
      h("td", { class: "mono" }, shortId(t.taskDefinitionArn)),
      h("td", {}, stateSpan(t.lastStatus), h("span", { class: "muted" }, ` → ${t.desiredStatus}`),
        t.stoppedReason ? h("div", { class: "muted" }, `${t.stopCode}: ${t.stoppedReason}`) : ""),
      h("td", {}, stateSpan(t.healthStatus)),
      h("td", {}, containers),
      h("td", {}, bindings),
      h("td", {}, node ? node.name : shortId(t.containerInstanceArn)),
      h("td", {},
        t.desiredStatus === "RUNNING"
          ? h("button", { class: "danger stop-task", type: "button", onclick: () => onStop(t) }, "Stop") : "",
        " ",
        h("button", { class: "secondary logs", type: "button", onclick: () => onLogs(t) }, "Logs")));
  });
}

const TASK_HEADERS = ["Task", "Definition", "Status", "Health", "Containers", "Bindings", "Node", ""];

async function showLogs(pane, t) {
  pane.replaceChildren(h("h3", {}, `Logs of ${shortId(t.taskArn)}`), h("div", { class: "muted" }, "reading…"));
  const text = await act(() => api("Tasks/GetLogs",
    { cluster: currentCluster(), task: t.taskArn, tail: 300 }, { text: true }));
  pane.replaceChildren(h("h3", {}, `Logs of ${shortId(t.taskArn)}`),
    h("pre", { class: "logs" }, text === undefined ? "(unavailable)" : text || "(no output)"));
}

PAGES.tasks = (root) => {
  const td = h("input", { id: "run-taskdef", placeholder: "family or family:revision" });
  const count = h("input", { id: "run-count", type: "number", min: "1", value: "1" });
  const stopped = h("input", { type: "checkbox", id: "tasks-stopped" });
  const list = h("div", { id: "task-list" });
  const logs = h("section", { id: "task-logs", hidden: true });
  const notice = h("div", { class: "notice" });
  const run = async (ev) => {
    ev.preventDefault();
    notice.textContent = "";
    const r = await act(() => api("Tasks/RunTask", { cluster: currentCluster(),
      taskDefinition: td.value.trim(), count: Number(count.value) || 1 }));
    if (!r) return;
    notice.textContent = [
      ...r.tasks.map((t) => `Started ${shortId(t.taskArn)}`),
      ...r.failures.map((f) => `Not placed: ${f.reason} ${f.detail}`),
    ].join("\n");
    await refresh();
  };
  stopped.addEventListener("change", () => refresh());
  root.append(
    h("h2", {}, "Tasks"),
    h("section", {}, h("form", { class: "row", onsubmit: run },
      h("label", { class: "field" }, "Task definition", td),
      h("label", { class: "field" }, "Count", count),
      h("button", { id: "run-task", type: "submit" }, "Run task")), notice),
    h("section", {}, h("label", {}, stopped, " stopped tasks instead of running ones"), list),
    logs);
  async function refresh() {
    const [r, nodes] = await Promise.all([
      api("Tasks/ListTasks", { cluster: currentCluster(), desiredStatus: stopped.checked ? "STOPPED" : "RUNNING" }),
      nodeAddresses(),
    ]);
    list.replaceChildren(table(TASK_HEADERS, taskRows(r.tasks, nodes, {
      onStop: (t) => act(async () => {
        await api("Tasks/StopTask", { cluster: currentCluster(), task: t.taskArn, reason: "Stopped from the console" });
        await refresh();
      }),
      onLogs: (t) => { logs.hidden = false; showLogs(logs, t); },
    })));
  }
  return { refresh };
};

PAGES.nodes = (root) => {
  const list = h("div", { id: "node-list" });
  root.append(h("h2", {}, "Nodes"), h("section", {}, list));
  const res = (rs, name) => (rs.find((r) => r.name === name) || {}).integerValue || 0;
  async function refresh() {
    const r = await api("Nodes/ListNodes", {});
    list.replaceChildren(table(
      ["Name", "Status", "Agent", "Address", "CPU free / total", "Memory MiB free / total", "Tasks", "Attributes", ""],
      r.containerInstances.map((n) => h("tr", { "data-name": n.name },
        h("td", {}, n.name, h("div", { class: "muted mono" }, n.ec2InstanceId)),
        h("td", {}, stateSpan(n.status)),
        h("td", {}, n.agentConnected ? h("span", { class: "state-ACTIVE" }, "connected")
          : h("span", { class: "state-STOPPED" }, "disconnected")),
        h("td", {}, n.address),
        h("td", {}, `${res(n.remainingResources, "CPU")} / ${res(n.registeredResources, "CPU")}`),
        h("td", {}, `${res(n.remainingResources, "MEMORY")} / ${res(n.registeredResources, "MEMORY")}`),
        h("td", {}, `${n.runningTasksCount} running, ${n.pendingTasksCount} pending`),
        h("td", { class: "muted" }, n.attributes.map((a) => `${a.name}=${a.value}`).join(", ")),
        h("td", {}, n.status === "ACTIVE"
          ? h("button", { class: "danger drain", type: "button", onclick: () => setStatus(n, "DRAINING") }, "Drain")
          : h("button", { class: "secondary activate", type: "button", onclick: () => setStatus(n, "ACTIVE") }, "Activate"))))));
  }
  async function setStatus(n, status) {
    await act(() => api("NodeAdmin/UpdateNodeStatus", { node: n.ec2InstanceId, status }));
    await refresh();
  }
  return { refresh };
};
