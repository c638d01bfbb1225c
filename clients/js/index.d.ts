// Type declarations of @readreceipt/client (index.js).

export declare const EVENT: Readonly<{
  SDK_READY: 'sdkStateReady';
  SDK_NOT_READY: 'sdkStateNotReady';
  MESSAGE_READ_RECEIPT_RECEIVED: 'onMessageReadReceiptReceived';
  NET_STATE_CHANGE: 'netStateChange';
  ERROR: 'error';
}>;

export declare const TYPES: Readonly<{
  CONV_C2C: 'C2C';
  CONV_GROUP: 'GROUP';
  GRP_WORK: 'Private';
  GRP_PUBLIC: 'Public';
  GRP_MEETING: 'ChatRoom';
  GRP_AVCHATROOM: 'AVChatRoom';
  GRP_COMMUNITY: 'Community';
  NET_STATE_CONNECTED: 'connected';
  NET_STATE_CONNECTING: 'connecting';
  NET_STATE_DISCONNECTED: 'disconnected';
}>;

export declare const CODES: Readonly<{
  INVALID_PARAMETER: 10004;
  NOT_LOGGED_IN: 92001;
  NETWORK: 92002;
  BAD_RESPONSE: 92003;
  DESTROYED: 92004;
  USER_MISMATCH: 92005;
}>;

export type ConversationType = typeof TYPES.CONV_C2C | typeof TYPES.CONV_GROUP;
export type NetState =
  | typeof TYPES.NET_STATE_CONNECTED
  | typeof TYPES.NET_STATE_CONNECTING
  | typeof TYPES.NET_STATE_DISCONNECTED;
export type EventName = (typeof EVENT)[keyof typeof EVENT];

/** What every call rejects with. */
export declare class ReadReceiptError extends Error {
  constructor(code: number, message: string);
  /** The server's code (10062, 10007, 91001, 70003, ...) or one of CODES. */
  code: number;
}

/** The fields of the SDK's Message that the client reads (others are kept as they are). */
export interface Message {
  ID: string;
  conversationType: ConversationType | string;
  /** The group ID of a group message, the receiver of a C2C one. */
  to: string;
  /** The sender (needed for C2C). */
  from?: string;
  needReadReceipt?: boolean;
  /** Set by getMessageReadReceiptList. */
  readReceiptInfo?: ReadReceiptInfo;
  /** Set by getMessageReadReceiptList for a C2C message. */
  isPeerRead?: boolean;
  [field: string]: unknown;
}

export interface GroupReadReceiptInfo {
  readCount: number;
  unreadCount: number;
}
export interface C2CReadReceiptInfo {
  isPeerRead: boolean;
  /** When the peer's receipt was recorded, in seconds; undefined while unread (or if the server has no time for it). */
  timestamp: number | undefined;
}
/** A message the server could not answer for: 10062 no receipt info, 10007 not yours to see. */
export interface FailedReadReceiptInfo {
  code: number;
  message: string;
}
export type ReadReceiptInfo = GroupReadReceiptInfo | C2CReadReceiptInfo | FailedReadReceiptInfo;

export interface ReceiptResult {
  ID: string;
  /** This call recorded the receipt (false if it was recorded before, or code is not 0). */
  recorded: boolean;
  /** 0, or why this message took no receipt: 10062, 91005 own message, 91006 not a recipient. */
  code: number;
  message: string;
}

export interface MemberPage {
  messageID: string;
  isCompleted: boolean;
  /** Pass to the next call while isCompleted is false. */
  cursor: string;
  /** The readers (filter 0); empty for filter 1. */
  readUserIDList: string[];
  /** The members who have not read it (filter 1); empty for filter 0. */
  unreadUserIDList: string[];
}

export interface ReadReceiptItem {
  /** The group of a group message; '' for C2C. */
  groupID: string;
  /** The reader whose receipt caused the event (for C2C, the receiver). */
  userID: string;
  messageID: string;
  readCount: number;
  unreadCount: number;
  isPeerRead: boolean;
  /** C2C: when the receipt was recorded, in seconds; undefined for group messages. */
  timestamp: number | undefined;
}

export interface NetStateChange {
  state: NetState;
  /** Present with state connected: true when the connection is back after it was lost (refresh counts). */
  reconnected?: boolean;
}

export interface EventDataMap {
  sdkStateReady: Record<string, never>;
  sdkStateNotReady: Record<string, never>;
  onMessageReadReceiptReceived: ReadReceiptItem[];
  netStateChange: NetStateChange;
  error: { code: number; message: string };
}

export interface ClientEvent<N extends EventName> {
  name: N;
  data: EventDataMap[N];
}

export interface Response<T> {
  code: 0;
  data: T;
}

export interface CreateOptions {
  /** The server, e.g. 'http://127.0.0.1:8080'. Defaults to the page's origin in a browser. */
  baseURL?: string;
  /** A WebSocket class to use instead of globalThis.WebSocket or the ws package. */
  WebSocket?: unknown;
  /** Backoff of the event connection's reconnects, in milliseconds (defaults 500 and 15000). */
  reconnect?: { minDelay?: number; maxDelay?: number };
}

export declare class ReadReceiptClient {
  constructor(options?: CreateOptions);
  /** The logged-in user, or ''. */
  readonly userID: string;
  /** The event connection's state. */
  readonly netState: NetState;
  login(options: { userID: string; userSig: string }): Promise<Response<{ repeatLogin: boolean }>>;
  logout(): Promise<Response<Record<string, never>>>;
  destroy(): Promise<Response<Record<string, never>>>;
  on<N extends EventName>(name: N, handler: (event: ClientEvent<N>) => void): void;
  off<N extends EventName>(name: N, handler: (event: ClientEvent<N>) => void): void;
  sendMessageReadReceipt(messageList: Message[]): Promise<Response<{ messageList: ReceiptResult[] }>>;
  getMessageReadReceiptList<M extends Message>(messageList: M[]): Promise<Response<{ messageList: M[] }>>;
  getGroupMessageReadMemberList(options: {
    message: Message;
    /** 0 read, 1 unread. */
    filter: 0 | 1;
    /** '' for the first page. */
    cursor?: string;
    /** At most 100 (the server's limit); default 100. */
    count?: number;
  }): Promise<Response<MemberPage>>;
}

export declare function normalizeEventItem(item: Record<string, unknown>): ReadReceiptItem;
export declare function normalizeEventMessage(
  msg: unknown,
): { name: typeof EVENT.MESSAGE_READ_RECEIPT_RECEIVED; data: ReadReceiptItem[] } | null;
export declare function normalizeMemberPage(page: unknown): MemberPage;
export declare function normalizeReadReceiptInfo(item: Record<string, unknown>, conversationType: string): ReadReceiptInfo;

export declare const ReadReceipt: Readonly<{
  create(options?: CreateOptions): ReadReceiptClient;
  EVENT: typeof EVENT;
  TYPES: typeof TYPES;
  CODES: typeof CODES;
}>;

export default ReadReceipt;
