/**
 * What the feed adds up to: counts by state and rates by event and outcome, for every view to show.
 *
 * Counts start from GET /api/inspector/overview, taken at a feed position, and move with each transition
 * after it. An instance's first transition (version 1) was committed with its creation, which no
 * transition records: it adds to the destination without taking from the initial state. Every
 * RESYNC_EVERY the counts are read again and the transitions since that read are applied on top, so a
 * count that drifted (an instance created apart from its first move) is right again.
 */

import type { Api } from "./api.js";
import type { FeedRefusal, FeedTransition, Position } from "./feed.js";

export type Counts = Record<string, Record<string, number>>;

interface Overview extends Position {
  counts: Counts;
}

export interface Rate {
  machine: string;
  event: string;
  outcome: string; // "applied", or the refusal's code
  lastMinute: number;
  total: number;
}

const RATE_WINDOW = 60_000; // ms
const KEEP = 30_000; // ms of transitions kept to re-apply on a fresh read of the counts
export const RESYNC_EVERY = 15_000; // ms

type Listener = (transitions: FeedTransition[], refusals: FeedRefusal[]) => void;

export class Live {
  counts: Counts = {};
  position: Position = { seq: 0, refusal_seq: 0 };
  private recent: { at: number; item: FeedTransition }[] = [];
  private readonly events: { at: number; key: string }[] = [];
  private readonly totals = new Map<string, number>();
  private readonly listeners = new Set<Listener>();

  constructor(private readonly api: Api) {}

  async load(): Promise<Position> {
    const overview = await this.api.get<Overview>("/api/inspector/overview");
    this.counts = overview.counts;
    for (const { item } of this.recent) if (item.seq > overview.seq) this.move(item);
    this.position = { seq: Math.max(this.position.seq, overview.seq), refusal_seq: overview.refusal_seq };
    this.emit([], []);
    return { seq: overview.seq, refusal_seq: overview.refusal_seq };
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  transitions(items: FeedTransition[]): void {
    const now = Date.now();
    for (const item of items) {
      this.move(item);
      this.recent.push({ at: now, item });
      this.count(now, `${item.machine}|${item.event}|applied`);
      this.position.seq = item.seq;
    }
    while (this.recent.length > 0 && (this.recent[0]?.at ?? now) < now - KEEP) this.recent.shift();
    this.emit(items, []);
  }

  refusals(items: FeedRefusal[]): void {
    const now = Date.now();
    for (const item of items) this.count(now, `${item.machine}|${item.event}|${item.code}`);
    this.emit([], items);
  }

  rates(now = Date.now()): Rate[] {
    while (this.events.length > 0 && (this.events[0]?.at ?? now) < now - RATE_WINDOW) this.events.shift();
    const window = new Map<string, number>();
    for (const { key } of this.events) window.set(key, (window.get(key) ?? 0) + 1);
    return [...this.totals.entries()]
      .map(([key, total]) => {
        const [machine = "", event = "", outcome = ""] = key.split("|");
        return { machine, event, outcome, lastMinute: window.get(key) ?? 0, total };
      })
      .sort((a, b) => b.lastMinute - a.lastMinute || b.total - a.total || a.event.localeCompare(b.event));
  }

  private move(item: FeedTransition): void {
    const counts = (this.counts[item.machine] ??= {});
    if (item.from === item.to) return;
    if (item.version > 1) counts[item.from] = Math.max(0, (counts[item.from] ?? 0) - 1);
    counts[item.to] = (counts[item.to] ?? 0) + 1;
  }

  private count(now: number, key: string): void {
    this.events.push({ at: now, key });
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
  }

  private emit(transitions: FeedTransition[], refusals: FeedRefusal[]): void {
    for (const listener of this.listeners) listener(transitions, refusals);
  }
}
