/**
 * React example (not a dependency of the package): a `SessionProvider` that owns one {@link SessionClient}
 * and a `useSession()` hook that re-renders on the client's moves.
 *
 * ```tsx
 * <SessionProvider options={{ baseUrl: "https://api.example.com" }}>
 *   <App />
 * </SessionProvider>
 *
 * function App() {
 *   const session = useSession();
 *   if (session.state === "stopped" || session.state === "logged_out") return <Login onSubmit={session.login} why={session.stopped} />;
 *   return <button onClick={() => void session.logout()}>Log out ({session.sessionState})</button>;
 * }
 * ```
 *
 * A stopped client is done for good (the machine's terminal state), so `login()` starts a new one. The
 * provider resumes on mount (the refresh cookie brings the session back after a reload) and stops its
 * client on unmount, leaving the session to the app's other tabs.
 */

import { createContext, useCallback, useContext, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { ReactElement, ReactNode } from "react";

import { SessionClient } from "@sessionflow/client";
import type {
  ClientErrorEvent,
  ClientOptions,
  ClientState,
  LoginCredentials,
  SessionAccess,
  SessionTransition,
  Stopped,
} from "@sessionflow/client";

/** What components read: a snapshot, replaced (never mutated) on every change. */
export interface SessionSnapshot {
  readonly state: ClientState;
  readonly sessionId: string | null;
  readonly sessionState: string | null;
  readonly sessionAccess: SessionAccess | null;
  readonly stopped: Stopped | null;
  readonly lastError: ClientErrorEvent | null;
  /** The session's transitions heard so far (the last 100). */
  readonly transitions: readonly SessionTransition[];
}

/** The snapshot, plus what components can do. */
export interface SessionValue extends SessionSnapshot {
  readonly client: SessionClient;
  login(credentials: LoginCredentials): Promise<void>;
  logout(): Promise<Stopped>;
}

/** One client and its snapshot, in the shape `useSyncExternalStore` wants. */
class SessionStore {
  readonly client: SessionClient;
  private snapshot: SessionSnapshot;
  private readonly listeners = new Set<() => void>();

  constructor(options: ClientOptions) {
    this.client = new SessionClient(options);
    this.snapshot = this.read(null, []);
    this.client.on("state", () => this.update());
    this.client.on("stopped", () => this.update());
    this.client.on("transition", (transition) => this.update(undefined, transition));
    this.client.on("error", (error) => this.update(error));
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): SessionSnapshot => this.snapshot;

  private update(error?: ClientErrorEvent, transition?: SessionTransition): void {
    const transitions = transition ? [...this.snapshot.transitions, transition].slice(-100) : this.snapshot.transitions;
    this.snapshot = this.read(error ?? this.snapshot.lastError, transitions);
    for (const listener of [...this.listeners]) listener();
  }

  private read(lastError: ClientErrorEvent | null, transitions: readonly SessionTransition[]): SessionSnapshot {
    const { state, sessionId, sessionState, sessionAccess, stopped } = this.client;
    return { state, sessionId, sessionState, sessionAccess, stopped, lastError, transitions };
  }
}

const SessionContext = createContext<SessionValue | null>(null);

/** Props of {@link SessionProvider}. */
export interface SessionProviderProps {
  /** Client options; read once, when the provider mounts. */
  options?: ClientOptions;
  /** Resume the session on mount with the refresh cookie (default true). */
  resume?: boolean;
  children: ReactNode;
}

/** Owns the session client of the app; children read it with {@link useSession}. */
export function SessionProvider({ options = {}, resume = true, children }: SessionProviderProps): ReactElement {
  const [store, setStore] = useState(() => new SessionStore(options));

  useEffect(() => {
    if (store.client.stopped?.event === "stop") {
      // Stopped by an unmount (React's StrictMode mounts, unmounts and mounts again): start afresh.
      setStore(new SessionStore(options));
      return;
    }
    if (resume && store.client.state === "logged_out") {
      store.client.resume().catch(() => {
        // No session to resume (no cookie, or it ended): the snapshot says stopped, and why.
      });
    }
    return () => {
      store.client.stop();
    };
    // `options` are read once, on mount and when a new client starts, like the initial state of useState.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store, resume]);

  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);

  const login = useCallback(
    async (credentials: LoginCredentials): Promise<void> => {
      let current = store;
      if (current.client.state !== "logged_out") {
        current = new SessionStore(options); // a stopped client stays stopped: log in with a new one
        setStore(current);
      }
      await current.client.login(credentials);
    },
    [store, options],
  );
  const logout = useCallback(() => store.client.logout(), [store]);

  const value = useMemo<SessionValue>(
    () => ({ ...snapshot, client: store.client, login, logout }),
    [snapshot, store, login, logout],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** The session of the nearest {@link SessionProvider}; re-renders on every move of its client. */
export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (value === null) throw new Error("useSession() needs a <SessionProvider> above it");
  return value;
}

/** A tiny status line, as an example of reading the hook. */
export function SessionStatus(): ReactElement {
  const { state, sessionState, stopped } = useSession();
  if (state === "stopped") return <p role="status">{stopped?.reason ?? "stopped"}</p>;
  return (
    <p role="status">
      {state} {sessionState !== null ? `(session ${sessionState})` : null}
    </p>
  );
}
