// Compiled (not run) by types.test.js: the SDK-style code an app writes must
// type-check against index.d.ts, and misuse must not.
import ReadReceipt, { type Message, type ReadReceiptItem, ReadReceiptError } from '../../index.js';

const client = ReadReceipt.create({ baseURL: 'http://127.0.0.1:8080', reconnect: { minDelay: 100 } });
const message: Message = { ID: 'm1', conversationType: ReadReceipt.TYPES.CONV_GROUP, to: 'team', from: 'alice', needReadReceipt: true };

client.on(ReadReceipt.EVENT.MESSAGE_READ_RECEIPT_RECEIVED, (event) => {
  const items: ReadReceiptItem[] = event.data;
  for (const { groupID, userID, messageID, readCount, unreadCount, isPeerRead, timestamp } of items) {
    const t: number | undefined = timestamp;
    console.log(groupID, userID, messageID, readCount + unreadCount, isPeerRead, t);
  }
});
client.on(ReadReceipt.EVENT.NET_STATE_CHANGE, (event) => {
  if (event.data.state === ReadReceipt.TYPES.NET_STATE_CONNECTED && event.data.reconnected) void client.getMessageReadReceiptList([message]);
});

client.on(ReadReceipt.EVENT.MESSAGE_DELIVERY_RECEIPT_RECEIVED, (event) => {
  for (const { messageID, deliveredCount, undeliveredCount, isPeerDelivered } of event.data) console.log(messageID, deliveredCount + undeliveredCount, isPeerDelivered);
});
client.on(ReadReceipt.EVENT.MESSAGE_READ_BY_SELF, (event) => {
  for (const { conversationID, messageIDList, thread, mark } of event.data) console.log(conversationID, messageIDList.length, thread, mark?.time);
});

async function model(): Promise<void> {
  const d = await client.sendMessageDeliveryReceipt([message]);
  const rec: boolean = d.data.messageList[0].recorded;
  const m = await client.markConversationRead({ conversationID: 'GROUPteam', messageID: 'm1' });
  const n: number = m.data.recordedCount + m.data.messageCount;
  await client.markConversationRead({ message, time: Date.now() });
  await client.markConversationRead({ message, thread: 'topic', time: new Date() });
  const mark = await client.getReadMark({ conversationID: 'C2Cbob', thread: 'topic' });
  const at: number | undefined = mark.data.mark?.time;
  const priv: boolean = (await client.setReceiptsPrivate(true)).data.private && (await client.getReceiptsPrivate()).data.private;
  const st = await client.getMessageReadState([message]);
  const s0 = st.data.messageList[0];
  const flags: boolean[] = [s0.isRead, s0.isPrivate, s0.isDelivered];
  const times = await client.getMessageReadTimes({ message, userIDList: ['bob'] });
  const ts: number | undefined = times.data.userList[0].timestamp;
  const page = await client.getGroupMessageReadMemberList({ message, filter: 2 });
  const delivered: string[] = page.data.deliveredUserIDList;
  console.log(rec, n, at, priv, flags, ts, delivered, page.data.readTimeList?.[0]);
}
void model();

async function main(): Promise<void> {
  const login = await client.login({ userID: 'alice', userSig: 'token' });
  const repeat: boolean = login.data.repeatLogin;
  const sent = await client.sendMessageReadReceipt([message]);
  const code: number = sent.data.messageList[0].code;
  const got = await client.getMessageReadReceiptList([message]);
  const info = got.data.messageList[0].readReceiptInfo;
  if (info && 'readCount' in info) console.log(info.readCount, info.unreadCount);
  const page = await client.getGroupMessageReadMemberList({ message, filter: 0, cursor: '', count: 30 });
  const users: string[] = [...page.data.readUserIDList, ...page.data.unreadUserIDList];
  const done: boolean = page.data.isCompleted;
  console.log(repeat, code, users, done, page.data.cursor, client.netState, client.userID);
  try {
    await client.logout();
  } catch (e) {
    if (e instanceof ReadReceiptError) console.log(e.code, e.message);
  }
  await client.destroy();
}
void main();

// @ts-expect-error filter is 0 to 3
void client.getGroupMessageReadMemberList({ message, filter: 4, cursor: '' });
// @ts-expect-error a mark needs its conversation
void client.markConversationRead({ messageID: 'm1' });
// @ts-expect-error privacy is a boolean
void client.setReceiptsPrivate('yes');
// @ts-expect-error login needs userSig
void client.login({ userID: 'alice' });
// @ts-expect-error no such event
client.on('nope', () => {});
