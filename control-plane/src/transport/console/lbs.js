// The load balancers page: each load balancer with its address, its listeners and their rules
// (conditions, and the target groups they forward to by weight), and every target group with
// the health of its targets (the tasks of the services attached to it), redrawn live.
"use strict";

PAGES.loadbalancers = (root) => {
  const lbs = h("div", { id: "lb-list" });
  const groups = h("div", { id: "tg-list" });
  root.append(h("h2", {}, "Load balancers"), lbs, h("h2", {}, "Target groups"), groups);

  const tgName = (arn) => (arn.split(":targetgroup/")[1] || arn).split("/")[0];
  const forwards = (actions) => (actions || [])
    .filter((a) => a.type === "forward")
    .flatMap((a) => a.targetGroups.map((t) => `${tgName(t.targetGroupArn)} (weight ${t.weight})`))
    .join(", ");
  const conditions = (r) => (r.conditions || [])
    .map((c) => `${c.field} ${c.values.join(" | ")}`).join(" and ") || "default";

  function lbCard(v) {
    const lb = v.loadBalancer;
    const [host, port] = [v.dnsName.split(":")[0], Number(v.dnsName.split(":")[1] || 0)];
    const rows = v.listeners.flatMap((l) => l.rules.map((r) => h("tr", { class: "rule" },
      h("td", {}, l.listener.port), h("td", {}, r.priority || "default"),
      h("td", {}, conditions(r)), h("td", { class: "forward" }, forwards(r.actions)))));
    return h("div", { class: "card lb", "data-name": lb.name },
      h("h3", {}, lb.name, " ", h("span", { class: "muted" }, lb.scheme), " · ",
        port ? hostLink(location.hostname || host, port, "lb-address") : h("span", { class: "muted" }, "no listener yet")),
      table(["Listener", "Priority", "Conditions", "Forwards to"], rows));
  }

  function tgCard(v) {
    const tg = v.targetGroup;
    const hc = tg.healthCheck || {};
    const rows = v.targets.map((t) => h("tr", { class: "target", "data-state": t.state },
      h("td", {}, t.serviceName), h("td", { class: "mono" }, shortId(t.taskArn)),
      h("td", { class: "mono" }, `${t.address}:${t.port}`),
      h("td", {}, stateSpan(t.state.toUpperCase())), h("td", { class: "muted" }, t.description || t.reason)));
    return h("div", { class: "card tg", "data-name": tg.name },
      h("h3", {}, tg.name, h("span", { class: "muted" },
        ` · health ${hc.path || "/"} every ${hc.intervalSeconds || 5}s · deregistration delay ${tg.deregistrationDelaySeconds}s`)),
      table(["Service", "Task", "Target", "Health", ""], rows));
  }

  async function refresh() {
    const [l, t] = await Promise.all([
      api("LoadBalancers/ListLoadBalancers", {}),
      api("LoadBalancers/ListTargetGroups", {}),
    ]);
    const described = await Promise.all((t.targetGroups || []).map((g) =>
      api("LoadBalancers/DescribeTargetGroup", { targetGroup: g.targetGroup.arn })));
    lbs.replaceChildren(...(l.loadBalancers.length ? l.loadBalancers.map(lbCard)
      : [h("div", { class: "card muted" }, "No load balancers: `berth lb create NAME` or `aws elbv2 create-load-balancer`.")]));
    groups.replaceChildren(...described.map(tgCard));
  }
  return { refresh };
};
