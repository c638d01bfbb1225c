// Type declarations of @readreceipt/client (index.js).

export declare const EVENT: Readonly<{
  SDK_READY: 'sdkStateReady';
  SDK_NOT_READY: 'sdkStateNotReady';
  MESSAGE_READ_RECEIPT_RECEIVED: 'onMessageReadReceiptReceived';
  MESSAGE_DELIVERY_RECEIPT_RECEIVED: 'onMessageDeliveryReceiptReceived';
  MESSAGE_READ_BY_SELF: 'onMessageReadBySelf';
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
  /** Recipients a device of whom got the message (reading implies delivered). */
  deliveredCount: number;
  undeliveredCount: number;
}
export interface C2CReadReceiptInfo {
  isPeerRead: boolean;
  /** The message reached the peer's device. */
  isPeerDelivered: boolean;
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
  /** The members who have not read it (filter 1); empty for other filters. */
  unreadUserIDList: string[];
  /** The members it was delivered to (filter 2); empty for other filters. */
  deliveredUserIDList: string[];
  /** The members it was not delivered to (filter 3); empty for other filters. */
  undeliveredUserIDList: string[];
  /** With a server that keeps read times, filter 0: when each of readUserIDList read it, in seconds (0: unknown). */
  readTimeList?: number[];
}

/** A read-up-to mark: the message it was set at ('' for a time) and its time in Unix milliseconds. */
export interface ReadMark {
  messageID: string;
  time: number;
}

/** An item of EVENT.MESSAGE_READ_BY_SELF: what one read call of the user's recorded. */
export interface OwnReadItem {
  /** GROUP<groupID> or C2C<the other user>. */
  conversationID: string;
  messageIDList: string[];
  thread: string;
  /** Set by markConversationRead: the mark afterwards. */
  mark: ReadMark | undefined;
}

/** The conversation of a mark: its ID, or a message of it. */
export type ConversationTarget = { conversationID: string; message?: Message } | { conversationID?: undefined; message: Message };

export type MarkOptions = ConversationTarget & {
  /** A thread of the conversation; absent for the whole conversation. */
  thread?: string;
  /** The last message read; or time: every message tracked at or before it (Unix ms or a Date). */
  messageID?: string;
  time?: number | Date;
};

export interface MarkResult {
  conversationID: string;
  thread: string;
  mark: ReadMark | undefined;
  /** Tracked messages the call went through, and receipts it recorded. */
  messageCount: number;
  recordedCount: number;
}

export interface ReadState {
  ID: string;
  /** Read by the user, publicly or privately. */
  isRead: boolean;
  /** The read is private: shown to nobody else. */
  isPrivate: boolean;
  isDelivered: boolean;
  /** When the user read it, in seconds, where the server keeps it. */
  timestamp: number | undefined;
  /** 0, or 10062 / 91005 for a message the user cannot have read. */
  code: number;
  message: string;
}

export interface UserReadTime {
  userID: string;
  isRead: boolean;
  /** In seconds; undefined when unread, private or kept without a time. */
  timestamp: number | undefined;
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
  /** The message's delivery counts, and for C2C whether it reached the peer. */
  deliveredCount: number;
  undeliveredCount: number;
  isPeerDelivered: boolean;
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
  onMessageDeliveryReceiptReceived: ReadReceiptItem[];
  onMessageReadBySelf: OwnReadItem[];
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
    /** 0 read, 1 unread, 2 delivered, 3 undelivered. */
    filter: 0 | 1 | 2 | 3;
    /** '' for the first page. */
    cursor?: string;
    /** At most 100 (the server's limit); default 100. */
    count?: number;
  }): Promise<Response<MemberPage>>;
  sendMessageDeliveryReceipt(messageList: Message[]): Promise<Response<{ messageList: ReceiptResult[] }>>;
  markConversationRead(options: MarkOptions): Promise<Response<MarkResult>>;
  getReadMark(options: ConversationTarget & { thread?: string }): Promise<Response<{ conversationID: string; thread: string; mark: ReadMark | undefined }>>;
  setReceiptsPrivate(on: boolean): Promise<Response<{ private: boolean }>>;
  getReceiptsPrivate(): Promise<Response<{ private: boolean }>>;
  getMessageReadState(messageList: Message[]): Promise<Response<{ messageList: ReadState[] }>>;
  getMessageReadTimes(options: { message: Message; userIDList: string[] }): Promise<Response<{ messageID: string; userList: UserReadTime[] }>>;
}

export declare function normalizeEventItem(item: Record<string, unknown>): ReadReceiptItem;
export declare function normalizeOwnReadItem(item: Record<string, unknown>): OwnReadItem;
export declare function normalizeEventMessage(
  msg: unknown,
):
  | { name: typeof EVENT.MESSAGE_READ_RECEIPT_RECEIVED | typeof EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED; data: ReadReceiptItem[] }
  | { name: typeof EVENT.MESSAGE_READ_BY_SELF; data: OwnReadItem[] }
  | null;
export declare function normalizeMemberPage(page: unknown): MemberPage;
export declare function normalizeReadReceiptInfo(item: Record<string, unknown>, conversationType: string): ReadReceiptInfo;

export declare const ReadReceipt: Readonly<{
  create(options?: CreateOptions): ReadReceiptClient;
  EVENT: typeof EVENT;
  TYPES: typeof TYPES;
  CODES: typeof CODES;
}>;

export default ReadReceipt;
