/**
 * WebhookSource: a route another system calls to hand us an event,
 * `POST /hooks/<name>`, turned into one task.
 *
 * The request is checked before anything is written:
 *
 * - size: a declared `content-length` over `maxBodyBytes` is refused at once,
 *   and a chunked body as soon as what was read passes `maxBodyBytes` (the
 *   platform's `MaxBodySize`, set for this read), without waiting for the
 *   rest: 413, connection closed;
 * - signature: `x-asterforge-signature: sha256=<hex>` must be the
 *   HMAC-SHA256 of the raw body under the configured secret, compared in
 *   constant time: 401 otherwise;
 * - body: JSON matching the task's payload Schema (or what `payload` makes of
 *   it): 400 with the reason otherwise;
 * - idempotency key: from a header (`idempotency-key` by default) or from the
 *   payload: 400 when missing.
 *
 * Then the task is published under the key, so a sender's retry of the same
 * event gets the same task (`existing: true`) while it is unfinished: 202
 * with `{ id, existing }`. Every refusal is a `Problem` (`{ "error": { "tag",
 * "message" } }`): 413 `PayloadTooLarge`, 401 `SignatureInvalid`, 400
 * `BadRequest` (unreadable or not JSON), `TaskPayloadInvalid` (the reason in
 * `error.details`) or `IdempotencyKeyMissing`; it is counted in
 * `asterforge_source_rejected_total{source,reason}` and nothing is enqueued.
 * A failed publish is its `RuntimeError`'s tag and status (an outage 503).
 * Served by nodes with the full API.
 *
 * @since 0.3.0
 */
import * as ByteSize from "effect/ByteSize"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as HttpRouter from "effect/http/HttpRouter"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Crypto from "node:crypto"
import * as Problem from "../http/Problem.ts"
import type * as RuntimeError from "../RuntimeError.ts"
import * as Task from "../Task.ts"
import * as TaskSource from "../TaskSource.ts"
import * as Telemetry from "../Telemetry.ts"

/** Where the key of an event comes from: a request header, or the decoded payload. */
export type IdempotencyKey<P> = { readonly header: string } | { readonly fromPayload: (payload: P) => string | undefined }

/** @category models */
export interface Options<P, R> {
  /** The route is `POST /hooks/<name>`. */
  readonly name: string
  readonly task: Task.Definition<P, any>
  /** The shared secret of the HMAC signature (e.g. read from the module's config section). */
  readonly secret: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, never, R>
  /** Default `x-asterforge-signature`; its value is `sha256=<hex digest of the raw body>`. */
  readonly signatureHeader?: string | undefined
  /** Default: the `idempotency-key` header. */
  readonly idempotencyKey?: IdempotencyKey<P> | undefined
  /** Default 256 KiB. */
  readonly maxBodyBytes?: number | undefined
  /** Turns the parsed JSON body into the payload; default: decoded with the task's payload Schema. */
  readonly payload?: ((body: unknown) => Result.Result<P, string>) | undefined
}

/** The signature header's value for `body` under `secret`: what a sender computes. */
export const sign = (secret: string, body: string | Uint8Array): string =>
  `sha256=${Crypto.createHmac("sha256", secret).update(body).digest("hex")}`

/** Whether `header` is the signature of `body`, compared in constant time. */
export const verify = (secret: string, body: Uint8Array, header: string | undefined): boolean => {
  if (header === undefined) return false
  const expected = Buffer.from(sign(secret, body))
  const given = Buffer.from(header.trim())
  // timingSafeEqual needs equal lengths; compare against itself so a wrong length costs the same.
  return Crypto.timingSafeEqual(expected, given.length === expected.length ? given : expected) && given.length === expected.length
}

type Reason = "too_large" | "signature" | "body" | "key"

const reject = (source: string, status: number, reason: Reason, tag: Problem.Tag, message: string, details?: unknown) =>
  Metric.update(Telemetry.labelled(Telemetry.metrics.sourceRejected, { source, reason }), 1).pipe(
    Effect.as(Problem.make(status, tag, message, { extra: { details } }))
  )

const isBodyTooLarge = (e: unknown): boolean => (e as { reason?: { reason?: unknown } })?.reason?.reason === "BodyTooLarge"

/**
 * Declares a webhook. A bad name or limit is a programming error, thrown.
 *
 * @category constructors
 */
export const make = <P, R = never>(options: Options<P, R>): TaskSource.TaskSource<R> => {
  const limit = options.maxBodyBytes ?? 256 * 1024
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`invalid webhook ${JSON.stringify(options.name)}: maxBodyBytes must be a positive integer`)
  const signatureHeader = (options.signatureHeader ?? "x-asterforge-signature").toLowerCase()
  const keySource = options.idempotencyKey ?? { header: "idempotency-key" }
  const decodePayload = options.payload ?? ((body: unknown) => Task.decodePayload(options.task, body, options.task.version))
  const secret: Effect.Effect<Redacted.Redacted<string>, never, R> = Redacted.isRedacted(options.secret)
    ? Effect.succeed(options.secret)
    : options.secret
  const path = `/hooks/${options.name}` as const

  const receive = (publisher: TaskSource.Publisher, request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function* () {
      const name = options.name
      const declared = Number(request.headers["content-length"] ?? Number.NaN)
      if (declared > limit) return yield* reject(name, 413, "too_large", "PayloadTooLarge", `body larger than ${limit} bytes`)
      const read = yield* request.arrayBuffer.pipe(
        Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(limit)),
        Effect.result
      )
      if (Result.isFailure(read)) {
        return isBodyTooLarge(read.failure)
          ? yield* reject(name, 413, "too_large", "PayloadTooLarge", `body larger than ${limit} bytes`)
          : yield* reject(name, 400, "body", "BadRequest", "the body could not be read")
      }
      const body = new Uint8Array(read.success)
      if (!verify(Redacted.value(yield* secret), body, request.headers[signatureHeader]))
        return yield* reject(
          name,
          401,
          "signature",
          "SignatureInvalid",
          `missing or wrong signature: ${signatureHeader} must be sha256=<hex HMAC-SHA256 of the body>`
        )
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body))
      } catch {
        return yield* reject(name, 400, "body", "BadRequest", "the body must be JSON")
      }
      const payload = decodePayload(json)
      if (Result.isFailure(payload))
        return yield* reject(
          name,
          400,
          "body",
          "TaskPayloadInvalid",
          `the body does not match task "${options.task.name}"`,
          payload.failure
        )
      const key = "header" in keySource ? request.headers[keySource.header.toLowerCase()] : keySource.fromPayload(payload.success)
      if (key === undefined || key.trim() === "" || key.length > 200)
        return yield* reject(
          name,
          400,
          "key",
          "IdempotencyKeyMissing",
          "header" in keySource
            ? `missing idempotency key: the ${keySource.header} header (1-200 characters)`
            : "the body carries no idempotency key"
        )
      const [enqueued] = yield* publisher.publish(options.task, [{ payload: payload.success, key: key.trim() }])
      return HttpServerResponse.jsonUnsafe(enqueued, { status: 202 })
    }).pipe(
      Effect.catch((e: RuntimeError.RuntimeError) => Effect.succeed(Problem.fromRuntimeError(e))),
      Effect.withSpan(Telemetry.spans.webhookReceive, { attributes: { "asterforge.source": options.name } })
    )

  return TaskSource.make<R>({
    name: options.name,
    kind: "webhook",
    placement: "every-node",
    routes: (publisher) =>
      HttpRouter.use((router) => router.add("POST", path, (request) => receive(publisher, request))) as Layer.Layer<
        never,
        never,
        HttpRouter.HttpRouter | R
      >
  })
}
