// The services page: create one behind the load balancer; each service's card shows its counts,
// deployments, events and tasks, redrawn live, with update, stop-task and delete controls built
// once so typing is never interrupted by a refresh.
"use strict";

PAGES.services = (root) => {
  const f = {
    name: h("input", { id: "svc-name", placeholder: "web" }),
    taskdef: h("input", { id: "svc-taskdef", placeholder: "web or web:1" }),
    desired: h("input", { id: "svc-desired", type: "number", value: "2" }),
    lbPort: h("input", { id: "svc-lb-port", type: "number", placeholder: "8080" }),
    lbContainer: h("input", { id: "svc-lb-container", placeholder: "web:80" }),
    healthPath: h("input", { id: "svc-health-path", placeholder: "/" }),
  };
  const cards = h("div", { id: "service-list" });
  const byName = new Map();
  const shifts = new Map();
  const logs = h("section", { id: "service-logs", hidden: true });

  const create = async (ev) => {
    ev.preventDefault();
    const req = {
      cluster: currentCluster(),
      serviceName: f.name.value.trim(),
      taskDefinition: f.taskdef.value.trim(),
      desiredCount: Number(f.desired.value),
      loadBalancers: [],
    };
    const port = f.lbPort.value.trim();
    if (port) {
      const [container, cport] = f.lbContainer.value.trim().split(":");
      const lb = {
        containerName: container || "",
        containerPort: Number(cport || 0),
        listenerPort: Number(port),
      };
      if (f.healthPath.value.trim()) lb.healthCheck = { path: f.healthPath.value.trim() };
      req.loadBalancers.push(lb);
    }
    const r = await act(() => api("Services/CreateService", req));
    if (r) await refresh();
  };

  root.append(
    h("h2", {}, "Services"),
    h("section", {}, h("form", { class: "row", onsubmit: create },
      h("label", { class: "field" }, "Name", f.name),
      h("label", { class: "field" }, "Task definition", f.taskdef),
      h("label", { class: "field" }, "Desired count", f.desired),
      h("label", { class: "field" }, "Listener port", f.lbPort),
      h("label", { class: "field" }, "Container:port", f.lbContainer),
      h("label", { class: "field" }, "Health path", f.healthPath),
      h("button", { id: "svc-create", type: "submit" }, "Create service"))),
    cards, logs);

  function card(name) {
    const taskdef = h("input", { class: "update-taskdef", placeholder: "new revision, e.g. web:2" });
    const desired = h("input", { class: "update-desired", type: "number", placeholder: "count" });
    const live = h("div", { class: "live" });
    const update = async (ev) => {
      ev.preventDefault();
      const req = { cluster: currentCluster(), service: name, taskDefinition: taskdef.value.trim() };
      if (desired.value.trim() !== "") req.desiredCount = Number(desired.value);
      const r = await act(() => api("Services/UpdateService", req));
      if (r) {
        taskdef.value = "";
        desired.value = "";
        await refresh();
      }
    };
    const el = h("div", { class: "card service", "data-name": name },
      h("div", { class: "row" },
        h("h3", { style: "flex: 1" }, name),
        h("form", { class: "row", onsubmit: update }, taskdef, desired,
          h("button", { class: "secondary update-service", type: "submit" }, "Update")),
        confirmButton("Delete", "delete-service", async () => {
          await api("Services/DeleteService", { cluster: currentCluster(), service: name, force: true });
          await refresh();
        })),
      live);
    return { el, live };
  }

  function renderLive(c, s, tasks, nodes) {
    const lb = s.loadBalancers[0];
    const counts = h("div", { class: "counts", "data-running": s.runningCount, "data-desired": s.desiredCount },
      h("b", { class: "running-count" }, s.runningCount), " running of ",
      h("b", { class: "desired-count" }, s.desiredCount), " desired, ",
      h("b", {}, s.pendingCount), " pending · ", stateSpan(s.status), " · ",
      h("span", { class: "mono" }, shortId(s.taskDefinition)),
      lb && lb.listenerPort ? h("span", {}, " · ", hostLink(location.hostname, lb.listenerPort, "service-address"),
        h("span", { class: "muted" }, ` → ${lb.containerName}:${lb.containerPort}`)) : "",
      lb && lb.targetGroupArn ? h("span", { class: "muted" },
        ` · target group ${(lb.targetGroupArn.split(":targetgroup/")[1] || "").split("/")[0]} → ${lb.containerName}:${lb.containerPort}`) : "");
    const failures = s.placementFailures.map((x) =>
      h("div", { class: "state-FAILED" }, `Cannot place: ${x.reason} ${x.detail}`));
    const deployments = table(
      ["Deployment", "Status", "Definition", "Desired", "Pending", "Running", "Healthy", "Failed", "Rollout"],
      s.deployments.map((d) => h("tr", { class: "deployment" },
        h("td", { class: "mono" }, d.id), h("td", {}, stateSpan(d.status)),
        h("td", { class: "mono" }, shortId(d.taskDefinition)),
        h("td", {}, d.desiredCount), h("td", {}, d.pendingCount), h("td", {}, d.runningCount),
        h("td", {}, d.healthyCount), h("td", {}, d.failedTasks),
        h("td", {}, stateSpan(d.rolloutState), h("div", { class: "muted" }, d.rolloutStateReason)))));
    const events = h("ul", { class: "events" },
      s.events.slice(0, 15).map((e) => h("li", {}, h("span", { class: "muted" }, e.createdAt + " "), e.message)));
    const taskTable = table(TASK_HEADERS, taskRows(tasks, nodes, {
      onStop: (t) => act(async () => {
        await api("Tasks/StopTask", { cluster: currentCluster(), task: t.taskArn, reason: "Stopped from the console" });
        await refresh();
      }),
      onLogs: (t) => { logs.hidden = false; showLogs(logs, t); },
    }));
    c.live.replaceChildren(counts, failures, shiftPanel(shifts, s) || "",
      h("div", { class: "grid2" },
        h("div", {}, h("h3", {}, "Deployments"), deployments),
        h("div", {}, h("h3", {}, "Events"), events)),
      h("h3", {}, "Tasks"), taskTable);
  }

  async function refresh() {
    const cluster = currentCluster();
    const [r, nodes] = await Promise.all([
      api("Services/ListServices", { cluster }),
      nodeAddresses(),
    ]);
    const services = r.services.filter((s) => s.status !== "INACTIVE");
    const tasks = await Promise.all(services.map((s) =>
      api("Tasks/ListTasks", { cluster, serviceName: s.serviceName })));
    for (const [name, c] of byName) {
      if (!services.some((s) => s.serviceName === name)) {
        c.el.remove();
        byName.delete(name);
      }
    }
    services.forEach((s, i) => {
      let c = byName.get(s.serviceName);
      if (!c) {
        c = card(s.serviceName);
        byName.set(s.serviceName, c);
        cards.append(c.el);
      }
      renderLive(c, s, tasks[i].tasks, nodes);
    });
    if (!services.length) {
      if (!cards.querySelector(".empty")) cards.append(h("div", { class: "card muted empty" }, `No services in cluster ${cluster}.`));
    } else {
      cards.querySelectorAll(".empty").forEach((e) => e.remove());
    }
  }
  return { refresh };
};
