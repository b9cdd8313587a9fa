/**
 * Who is signed in, for every view: the session from `GET /admin/api/session`
 * (actor, role, CSRF token), the role rules the views follow to show or hide
 * actions (the API decides, the UI only avoids offering what it would
 * refuse), and the sign-in hint kept in `localStorage`.
 *
 * The hint says a sign-in happened in this browser, so the UI asks for the
 * session only then and goes straight to the sign-in page otherwise (no
 * request that is certain to be refused). It grants nothing: the session
 * cookie is HttpOnly and the API checks it on every request.
 */
import { createContext } from "preact"
import { useContext } from "preact/hooks"
import type { Role, SessionView } from "./api.ts"

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 }

/** Whether `role` may do what needs `need`: viewer < operator < admin (the API's rule). */
export const allows = (role: Role, need: Role): boolean => rank[role] >= rank[need]

export interface SessionContext {
  readonly who: SessionView
  readonly signOut: () => Promise<void>
}

export const Session = createContext<SessionContext | null>(null)

/** The signed-in caller; views under the signed-in layout only. */
export const useSession = (): SessionContext => {
  const session = useContext(Session)
  if (session === null) throw new Error("useSession outside a signed-in view")
  return session
}

/** Whether the caller's role allows `need`. */
export const useCan = (need: Role): boolean => allows(useSession().who.role, need)

const hintKey = "asterforge.admin.signedIn"

export const hint = {
  get: (): boolean => {
    try {
      return localStorage.getItem(hintKey) === "1"
    } catch {
      return true
    }
  },
  set: (signedIn: boolean): void => {
    try {
      if (signedIn) localStorage.setItem(hintKey, "1")
      else localStorage.removeItem(hintKey)
    } catch {
      // storage unavailable (private mode): the UI then asks the API each time
    }
  }
}
