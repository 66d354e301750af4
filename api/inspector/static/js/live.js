/**
 * What the feed adds up to: counts by state and rates by event and outcome, for every view to show.
 *
 * Counts start from GET /api/inspector/overview, taken at a feed position, and move with each transition
 * after it. An instance's first transition (version 1) was committed with its creation, which no
 * transition records: it adds to the destination without taking from the initial state. Every
 * RESYNC_EVERY the counts are read again and the transitions since that read are applied on top, so a
 * count that drifted (an instance created apart from its first move) is right again.
 */
const RATE_WINDOW = 60_000; // ms
const KEEP = 30_000; // ms of transitions kept to re-apply on a fresh read of the counts
export const RESYNC_EVERY = 15_000; // ms
export class Live {
    api;
    counts = {};
    position = { seq: 0, refusal_seq: 0 };
    recent = [];
    events = [];
    totals = new Map();
    listeners = new Set();
    constructor(api) {
        this.api = api;
    }
    async load() {
        const overview = await this.api.get("/api/inspector/overview");
        this.counts = overview.counts;
        for (const { item } of this.recent)
            if (item.seq > overview.seq)
                this.move(item);
        this.position = { seq: Math.max(this.position.seq, overview.seq), refusal_seq: overview.refusal_seq };
        this.emit([], []);
        return { seq: overview.seq, refusal_seq: overview.refusal_seq };
    }
    subscribe(listener) {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }
    transitions(items) {
        const now = Date.now();
        for (const item of items) {
            this.move(item);
            this.recent.push({ at: now, item });
            this.count(now, `${item.machine}|${item.event}|applied`);
            this.position.seq = item.seq;
        }
        while (this.recent.length > 0 && (this.recent[0]?.at ?? now) < now - KEEP)
            this.recent.shift();
        this.emit(items, []);
    }
    refusals(items) {
        const now = Date.now();
        for (const item of items)
            this.count(now, `${item.machine}|${item.event}|${item.code}`);
        this.emit([], items);
    }
    rates(now = Date.now()) {
        while (this.events.length > 0 && (this.events[0]?.at ?? now) < now - RATE_WINDOW)
            this.events.shift();
        const window = new Map();
        for (const { key } of this.events)
            window.set(key, (window.get(key) ?? 0) + 1);
        return [...this.totals.entries()]
            .map(([key, total]) => {
            const [machine = "", event = "", outcome = ""] = key.split("|");
            return { machine, event, outcome, lastMinute: window.get(key) ?? 0, total };
        })
            .sort((a, b) => b.lastMinute - a.lastMinute || b.total - a.total || a.event.localeCompare(b.event));
    }
    move(item) {
        const counts = (this.counts[item.machine] ??= {});
        if (item.from === item.to)
            return;
        if (item.version > 1)
            counts[item.from] = Math.max(0, (counts[item.from] ?? 0) - 1);
        counts[item.to] = (counts[item.to] ?? 0) + 1;
    }
    count(now, key) {
        this.events.push({ at: now, key });
        this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    }
    emit(transitions, refusals) {
        for (const listener of this.listeners)
            listener(transitions, refusals);
    }
}
