/**
 * The admin UI's entry: mounts the app at `#app` under `/admin`. The app
 * finds out who is signed in (only when this browser signed in before; see
 * session.ts), shows the sign-in page otherwise, and routes the signed-in
 * pages: overview, tasks, a task, queues, nodes, lanes and the audit log.
 * A session that ends (any 401) brings back the sign-in page, with the page
 * the user was on to return to.
 */
import "uplot/dist/uPlot.min.css"
import "./styles.css"
import { html } from "htm/preact"
import { render } from "preact"
import { useCallback, useEffect, useMemo, useState } from "preact/hooks"
import { Redirect, Route, Router, Switch, useLocation } from "wouter-preact"
import { api, describeError, type SessionView, setCsrfToken, setUnauthorizedHandler } from "./api.ts"
import { Layout } from "./components/Layout.ts"
import { Audit } from "./pages/Audit.ts"
import { Lanes } from "./pages/Lanes.ts"
import { Login } from "./pages/Login.ts"
import { Nodes } from "./pages/Nodes.ts"
import { Overview } from "./pages/Overview.ts"
import { Queues } from "./pages/Queues.ts"
import { TaskDetail } from "./pages/TaskDetail.ts"
import { Tasks } from "./pages/Tasks.ts"
import { hint, Session, type SessionContext } from "./session.ts"

type Phase = { readonly _tag: "checking" } | { readonly _tag: "signedOut" } | { readonly _tag: "signedIn"; readonly who: SessionView }

const NotFound = () => html`<h1>Not found</h1>
  <p>There is no page here. <a href="/admin/">Go to the overview</a>.</p>`

const SignedIn = () =>
  html`<${Switch}>
    <${Route} path="/"><${Overview} /><//>
    <${Route} path="/tasks"><${Tasks} /><//>
    <${Route} path="/tasks/:id">${(params: { id: string }) => html`<${TaskDetail} id=${params.id} />`}<//>
    <${Route} path="/queues"><${Queues} /><//>
    <${Route} path="/nodes"><${Nodes} /><//>
    <${Route} path="/lanes"><${Lanes} /><//>
    <${Route} path="/audit"><${Audit} /><//>
    <${Route} path="/login"><${Redirect} to="/" replace /><//>
    <${Route}><${NotFound} /><//>
  <//>`

const App = () => {
  const [phase, setPhase] = useState<Phase>({ _tag: "checking" })
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const [location, navigate] = useLocation()

  const signedIn = useCallback((who: SessionView) => {
    setCsrfToken(who.csrfToken)
    hint.set(true)
    setPhase({ _tag: "signedIn", who })
  }, [])
  const signedOut = useCallback(() => {
    setCsrfToken(null)
    hint.set(false)
    setPhase({ _tag: "signedOut" })
  }, [])

  useEffect(() => {
    setUnauthorizedHandler(signedOut)
    const params = new URLSearchParams(window.location.search)
    // An OpenID sign-in comes back marked ?signin=oidc: the session cookie is set, the hint is not yet.
    const returning = params.get("signin") === "oidc"
    if (returning) {
      params.delete("signin")
      const rest = params.toString()
      history.replaceState(null, "", `${window.location.pathname}${rest === "" ? "" : `?${rest}`}`)
    }
    if (!returning && !hint.get()) return signedOut()
    api
      .session()
      .then(signedIn)
      .catch((e) => {
        if ((e as { status?: number }).status !== 401) setProblem(describeError(e))
        signedOut()
      })
  }, [])

  const context = useMemo<SessionContext | null>(
    () =>
      phase._tag === "signedIn"
        ? {
            who: phase.who,
            signOut: async () => {
              await api.signOut()
              signedOut()
              navigate("/login", { replace: true })
            }
          }
        : null,
    [phase]
  )

  if (phase._tag === "checking") return html`<p class="muted page-pad" aria-live="polite">Checking your session…</p>`
  if (phase._tag === "signedOut") {
    const returnTo = location === "/login" ? "/" : location
    return html`<${Login} returnTo=${returnTo} problem=${problem} onSignedIn=${(who: SessionView) => {
      signedIn(who)
      navigate(returnTo, { replace: true })
    }} />`
  }
  return html`<${Session.Provider} value=${context}>
    <${Layout}><${SignedIn} /><//>
  <//>`
}

const root = document.getElementById("app")
if (root !== null) render(html`<${Router} base="/admin"><${App} /><//>`, root)
