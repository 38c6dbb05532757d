import winston from 'winston';

/** A structured JSON logger. `child` adds fields (e.g. `{kind, namespace, name}`) to every line. */
export type Logger = winston.Logger;

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Creates the root logger of a component: one JSON object per line on stdout with `time`,
 * `level`, `component` and `msg`. Level comes from the argument, else `OCTO_LOG_LEVEL`, else info.
 */
export function createLogger(component: string, level?: LogLevel, stream?: NodeJS.WritableStream): Logger {
  const envLevel = process.env['OCTO_LOG_LEVEL'];
  const chosen = level ?? (LOG_LEVELS.includes(envLevel as LogLevel) ? (envLevel as LogLevel) : 'info');
  return winston.createLogger({
    level: chosen,
    defaultMeta: { component },
    format: winston.format.combine(
      winston.format.timestamp({ alias: 'time' }),
      winston.format.errors({ stack: true }),
      winston.format((info) => {
        delete info['timestamp'];
        return info;
      })(),
      winston.format.json(),
    ),
    transports: [stream ? new winston.transports.Stream({ stream }) : new winston.transports.Console()],
  });
}
