/**
 * @since 0.1.0
 */
export * as Message from "./Message.js"
