/**
 * @since 0.1.0
 */
export * as Message from "./Message.js"

/**
 * @since 0.1.0
 */
export * as Conn from "./Conn.js"

/**
 * @since 0.1.0
 */
export * as Errors from "./Errors.js"

/**
 * @since 0.1.0
 */
export * as Events from "./Events.js"

/**
 * @since 0.1.0
 */
export * as Reply from "./Reply.js"

/**
 * @since 0.1.0
 */
export * as Server from "./Server.js"

/**
 * @since 0.1.0
 */
export * as Client from "./Client.js"

/**
 * @since 0.1.0
 */
export * as Contract from "./Contract.js"

/**
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"
export * as Presence from "./Presence.js"

/**
 * @since 0.1.0
 */
export * as Admin from "./Admin.js"
export * as Cluster from "./Cluster.js"
export * as History from "./History.js"
