/**
 * A machine's diagram in the page: the SVG the server lays out with Graphviz from the definitions it runs,
 * with a live count on every state, transitions that flash as they happen, and a session's path drawn on it.
 * Without Graphviz on the server (503), the states are listed from the generated definitions instead.
 */

import { h } from "./dom.js";

export interface MachineDefinition {
  readonly name: string;
  readonly initial: string;
  readonly states: readonly string[];
  readonly terminal: readonly string[];
}

const SVG = "http://www.w3.org/2000/svg";

export class Diagram {
  private readonly nodes = new Map<string, Element>();
  private readonly edges = new Map<string, Element>();
  private readonly badges = new Map<string, Element>();

  private constructor(readonly machine: MachineDefinition, readonly element: HTMLElement) {}

  /** Load the diagram into ``parent``, which must be in the document (the badges are placed by layout). */
  static async load(machine: MachineDefinition, parent: HTMLElement): Promise<Diagram> {
    const element = h("figure", { class: "diagram", "data-testid": `diagram-${machine.name}` });
    parent.append(element);
    const diagram = new Diagram(machine, element);
    let svg: Element | null = null;
    try {
      const response = await fetch(`/api/lifecycle/machines/${machine.name}/diagram?format=svg`);
      if (response.ok) {
        const parsed = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
        if (parsed.querySelector("parsererror") === null) svg = document.importNode(parsed.documentElement, true);
      }
    } catch {
      svg = null;
    }
    if (svg === null) diagram.listStates();
    else diagram.adopt(svg);
    return diagram;
  }

  /** Show ``count`` on ``state``; states with someone in them stand out. */
  setCount(state: string, count: number): void {
    const badge = this.badges.get(state);
    if (badge !== undefined && badge.textContent !== String(count)) badge.textContent = String(count);
    this.nodes.get(state)?.classList.toggle("occupied", count > 0);
  }

  /** Flash the edge ``from`` -> ``to`` and its destination. */
  flash(from: string, to: string): void {
    for (const element of [this.edges.get(`${from}->${to}`), this.nodes.get(to)]) {
      if (element === undefined) continue;
      element.classList.remove("flash");
      void (element as HTMLElement | SVGGraphicsElement).getBoundingClientRect(); // restart the animation
      element.classList.add("flash");
    }
  }

  /** Draw a path: the edges taken, the states visited, and where it stands now. */
  drawPath(moves: readonly { from: string; to: string }[], current: string): void {
    for (const element of [...this.edges.values(), ...this.nodes.values()]) {
      element.classList.remove("on-path", "current");
    }
    this.nodes.get(this.machine.initial)?.classList.add("on-path");
    for (const move of moves) {
      this.edges.get(`${move.from}->${move.to}`)?.classList.add("on-path");
      this.nodes.get(move.to)?.classList.add("on-path");
    }
    this.nodes.get(current)?.classList.add("current");
  }

  private adopt(svg: Element): void {
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `the ${this.machine.name} machine`);
    this.element.append(svg);
    for (const group of svg.querySelectorAll("g.node, g.edge")) {
      const title = group.querySelector("title")?.textContent ?? "";
      if (group.classList.contains("edge")) {
        this.edges.set(title, group);
      } else if (this.machine.states.includes(title)) {
        this.nodes.set(title, group);
        group.setAttribute("data-state", title);
      }
    }
    this.addBadges();
  }

  private addBadges(): void {
    for (const [state, group] of this.nodes) {
      const box = (group as SVGGraphicsElement).getBBox();
      const badge = document.createElementNS(SVG, "text");
      badge.setAttribute("x", String(box.x + box.width - 6));
      badge.setAttribute("y", String(box.y + 13));
      badge.setAttribute("text-anchor", "end");
      badge.setAttribute("class", "count");
      badge.setAttribute("data-testid", `count-${this.machine.name}-${state}`);
      badge.textContent = this.badges.get(state)?.textContent ?? "0";
      group.append(badge);
      this.badges.set(state, badge);
    }
  }

  private listStates(): void {
    const list = h("ul", { class: "states" });
    for (const state of this.machine.states) {
      const badge = h("span", { class: "count", "data-testid": `count-${this.machine.name}-${state}` }, "0");
      const item = h("li", { "data-state": state }, h("b", {}, state), " ", badge);
      this.nodes.set(state, item);
      this.badges.set(state, badge);
      list.append(item);
    }
    this.element.append(h("figcaption", {}, "Graphviz is not installed on the server: states only"), list);
  }
}
