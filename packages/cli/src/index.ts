export { run } from "./cli";
