/** The overview: each machine's diagram with live counts and flashing transitions, and the rates table. */

import type { Diagram } from "./diagram.js";
import { Diagram as DiagramView } from "./diagram.js";
import { h } from "./dom.js";
import { CONNECTION_MACHINE, SESSION_MACHINE } from "./generated/machines.js";
import type { Live } from "./live.js";

const MACHINES = [SESSION_MACHINE, CONNECTION_MACHINE];

export async function showOverview(root: HTMLElement, live: Live): Promise<() => void> {
  const rates = h("tbody", { "data-testid": "rates" });
  const diagrams: Diagram[] = [];
  const row = h("div", { class: "row" });
  root.replaceChildren();
  for (const machine of MACHINES) {
    const total = h("span", { class: "total", "data-testid": `total-${machine.name}` });
    const section = h("section", { class: `machine ${machine.name}` }, h("h2", {}, `${machine.name}s `, total));
    (machine === SESSION_MACHINE ? root : row).append(section);
    if (machine === SESSION_MACHINE) root.append(row);
    const diagram = await DiagramView.load(machine, section);
    diagrams.push(diagram);
  }
  row.append(
    h(
      "section",
      { class: "rates" },
      h("h2", {}, "Transitions and refusals by event and outcome"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ...["machine", "event", "outcome", "last minute", "per second", "since opened"].map((t) => h("th", {}, t)))),
        rates,
      ),
    ),
  );

  let drawn = false;
  const draw = (): void => {
    drawn = false;
    for (const diagram of diagrams) {
      const counts = live.counts[diagram.machine.name] ?? {};
      let open = 0;
      for (const state of diagram.machine.states) {
        const count = counts[state] ?? 0;
        diagram.setCount(state, count);
        if (!diagram.machine.terminal.includes(state)) open += count;
      }
      const total = root.querySelector(`[data-testid="total-${diagram.machine.name}"]`);
      if (total !== null) total.textContent = `(${open} not ended)`;
    }
    rates.replaceChildren(
      ...live.rates().map((rate) =>
        h(
          "tr",
          { class: rate.outcome === "applied" ? "applied" : "refused" },
          h("td", {}, rate.machine),
          h("td", {}, rate.event),
          h("td", {}, rate.outcome),
          h("td", { class: "number" }, String(rate.lastMinute)),
          h("td", { class: "number" }, (rate.lastMinute / 60).toFixed(2)),
          h("td", { class: "number" }, String(rate.total)),
        ),
      ),
    );
  };
  const schedule = (): void => {
    if (!drawn) {
      drawn = true;
      requestAnimationFrame(draw);
    }
  };
  draw();
  const unsubscribe = live.subscribe((transitions) => {
    for (const item of transitions) diagrams.find((d) => d.machine.name === item.machine)?.flash(item.from, item.to);
    schedule();
  });
  const ticking = setInterval(schedule, 1000); // the last minute moves on even when nothing happens
  return () => {
    unsubscribe();
    clearInterval(ticking);
  };
}
