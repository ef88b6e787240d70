// The outbox of messages typed and not yet stored by the server: one record
// per room and tab in IndexedDB (the tab's list as JSON), written whole or
// removed. The WASM client (outbox.rs) is its only user.
const NAME = 'chat';
const STORE = 'outbox';
let opening = null;

function database() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(NAME, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => {
        const db = request.result;
        // Storage cleared at logout, or a newer page upgrading: let go,
        // and open again when next asked.
        db.onversionchange = () => {
          db.close();
          opening = null;
        };
        db.onclose = () => {
          opening = null;
        };
        resolve(db);
      };
      request.onerror = () => reject(request.error);
    });
    opening.catch(() => {
      opening = null;
    });
  }
  return opening;
}

function finished(transaction) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

// This tab's name, kept across its reloads: each tab writes its own record
// (`[room, tab]`), so two tabs never write over each other's messages.
const TAB = (() => {
  try {
    let tab = sessionStorage.getItem('chat-outbox-tab');
    if (!tab) {
      tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
      sessionStorage.setItem('chat-outbox-tab', tab);
    }
    return tab;
  } catch {
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }
})();

// Takes every record of `room` (this tab's first, then those other tabs,
// closed or not, left behind), in one transaction: the messages of `author`
// among them become this tab's record, in order and each once, and the
// others' records go (a tab still open writes its own again on its next
// change). Returns the messages as JSON (`[{client_id, text}]`).
export async function outboxTake(room, author) {
  const db = await database();
  const transaction = db.transaction(STORE, 'readwrite');
  const store = transaction.objectStore(STORE);
  const range = IDBKeyRange.bound([room], [room, []]);
  let taken = [];
  const keysRequest = store.getAllKeys(range);
  keysRequest.onsuccess = () => {
    const valuesRequest = store.getAll(range);
    valuesRequest.onsuccess = () => {
      const keys = keysRequest.result;
      const records = valuesRequest.result.map((text, i) => ({ key: keys[i], text }));
      records.sort((a, b) => (a.key[1] === TAB ? -1 : 0) - (b.key[1] === TAB ? -1 : 0));
      const seen = new Set();
      for (const { key, text } of records) {
        let record = null;
        try {
          record = JSON.parse(text);
        } catch {
          // Not ours to read: dropped below.
        }
        if (record && record.author === author && Array.isArray(record.messages)) {
          for (const message of record.messages) {
            if (!seen.has(message.client_id)) {
              seen.add(message.client_id);
              taken.push(message);
            }
          }
        }
        store.delete(key);
      }
      if (taken.length) {
        store.put(JSON.stringify({ author, messages: taken }), [room, TAB]);
      }
    };
  };
  await finished(transaction);
  return JSON.stringify(taken);
}

// Writes this tab's record of `room` (JSON), or removes it (`null`).
export async function outboxSave(room, record) {
  const db = await database();
  const transaction = db.transaction(STORE, 'readwrite');
  const store = transaction.objectStore(STORE);
  if (record == null) {
    store.delete([room, TAB]);
  } else {
    store.put(record, [room, TAB]);
  }
  await finished(transaction);
}
