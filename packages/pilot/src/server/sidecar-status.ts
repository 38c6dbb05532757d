/**
 * SidecarStatusService: sidecars report their LEGO agent's status on the pilot's gRPC port (the
 * proxy forwards what its agent tells it). The status is parsed with the contract's schema, so a
 * malformed report is refused naming the field, and kept only for nodes with a stream here.
 */
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { AgentStatus } from '@octo-mesh/contracts';
import type { SidecarStatusAck, SidecarStatusReport, SidecarStatusServiceServer } from '@octo-mesh/proto';
import type { Logger } from '@octo-mesh/runtime';

/** Maximum size of one report's JSON; a status is a few hundred bytes. */
const MAX_STATUS_BYTES = 64 * 1024;

export interface SidecarStatusSink {
  reportAgentStatus(nodeId: string, status: AgentStatus): boolean;
}

export function sidecarStatusService(sink: SidecarStatusSink, logger?: Logger, count?: (result: 'accepted' | 'invalid' | 'not-connected') => void): SidecarStatusServiceServer {
  const refuse = (cb: sendUnaryData<SidecarStatusAck>, code: status, reason: 'invalid' | 'not-connected', details: string, nodeId: string) => {
    count?.(reason);
    logger?.debug('sidecar status refused', { node: nodeId, reason, details });
    cb({ code, details, name: 'SidecarStatusRefused', message: details });
  };
  return {
    report: (call: ServerUnaryCall<SidecarStatusReport, SidecarStatusAck>, cb: sendUnaryData<SidecarStatusAck>) => {
      const { nodeId, agentStatusJson } = call.request;
      if (!nodeId) return refuse(cb, status.INVALID_ARGUMENT, 'invalid', 'node_id is required', nodeId);
      if (agentStatusJson.length > MAX_STATUS_BYTES) return refuse(cb, status.INVALID_ARGUMENT, 'invalid', `agent_status_json is over ${MAX_STATUS_BYTES} bytes`, nodeId);
      let raw: unknown;
      try {
        raw = JSON.parse(agentStatusJson);
      } catch (err) {
        return refuse(cb, status.INVALID_ARGUMENT, 'invalid', `agent_status_json is not JSON: ${(err as Error).message}`, nodeId);
      }
      const parsed = AgentStatus.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        return refuse(cb, status.INVALID_ARGUMENT, 'invalid', `agent_status_json.${issue.path.join('.')}: ${issue.message}`, nodeId);
      }
      if (!sink.reportAgentStatus(nodeId, parsed.data)) return refuse(cb, status.NOT_FOUND, 'not-connected', `node ${nodeId} has no ADS stream to this pilot`, nodeId);
      count?.('accepted');
      cb(null, {});
    },
  };
}
