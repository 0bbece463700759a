export { buildApp } from "./app";
export { type Config, ConfigError, describeConfig, parseConfig } from "./config/config";
export { type Running, startServer } from "./main";
