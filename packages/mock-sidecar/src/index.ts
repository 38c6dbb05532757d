export { parseScenario, validateScenario, scaleScenario, parseDuration, ScenarioError, STEP_SCHEMAS, XDS_TYPES, type Scenario, type Step, type StepKind, type NodeTemplate, type Selector, type XdsType } from './scenario.js';
export { MockSidecar, TYPE_OF, type SidecarSpec, type Discovery, type SidecarClient, type SidecarOptions } from './sidecar.js';
export { FrameReader, grpcFrame, leanLocate, leanUnary, openLeanCall, statusOf, LeanCallError, type LeanCall, type LeanCallHandlers } from './lean.js';
export { parseSotwResponse, parseDeltaResponse, firstStringField, type WireResponse } from './xds-wire.js';
export { EmbeddedControlPlane, ExternalControlPlane, type ControlPlane, type ComponentInfo } from './control-plane.js';
export { ScenarioRunner, StepFailure, endpointsOf, type RunnerOptions } from './runner.js';
export { ProcSampler, formatReport, percentile, readProc, type RunReport, type StepResult, type Sample } from './report.js';
export { runScenario, scenarioFiles, loadScenario, type RunFilesOptions } from './run.js';
