export { buildApp } from "./app";
export { verifyStoredLog } from "./audit-verify";
export { type Config, ConfigError, describeConfig, parseConfig } from "./config/config";
export { type Running, startServer } from "./main";
export { TemplateError, type TemplateProblem } from "./modules/catalog/catalog";
export { checkTemplateDir } from "./modules/catalog/template-check";
export { verifyLogFile } from "./modules/transparency/log-export";
export type { VerifyProblem, VerifyReport } from "./modules/transparency/verify-log";
