export declare const VERIFY_NODE_FLAGS: string[];
