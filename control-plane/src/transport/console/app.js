// The console's frame: hash routing between pages, the cluster picker, and the refresh loop
// that keeps the current page live (every 1.5 s; one refresh at a time).
"use strict";

const REFRESH_MS = 1500;
let current = null;
let generation = 0;

async function refreshClusterSelect(select) {
  const pick = document.getElementById("cluster-select");
  const r = await api("Clusters/ListClusters", {});
  const names = r.clusters.filter((c) => c.status === "ACTIVE").map((c) => c.clusterName);
  if (select) localStorage.setItem("berth.cluster", select);
  let chosen = currentCluster();
  if (!names.includes(chosen)) chosen = names.includes("default") ? "default" : names[0] || "default";
  localStorage.setItem("berth.cluster", chosen);
  pick.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  pick.value = chosen;
}

function show() {
  const name = (location.hash.replace(/^#\/?/, "") || "services").split("/")[0];
  const page = PAGES[name] ? name : "services";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const main = document.getElementById("main");
  main.replaceChildren();
  showError(null);
  current = PAGES[page](main);
  generation++;
  loop(generation);
}

async function loop(gen) {
  while (gen === generation) {
    try {
      await current.refresh();
    } catch (e) {
      showError(e);
    }
    await new Promise((r) => setTimeout(r, REFRESH_MS));
  }
}

document.getElementById("cluster-select").addEventListener("change", (ev) => {
  localStorage.setItem("berth.cluster", ev.target.value);
  show();
});
window.addEventListener("hashchange", show);
initTokenDialog();
act(() => refreshClusterSelect()).then(show);
