export { buildApp } from "./app";
export { ConfigError, type Config, describeConfig, parseConfig } from "./config/config";
export { type Running, startServer } from "./main";
