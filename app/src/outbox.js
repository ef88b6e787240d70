// The outbox of messages typed and not yet stored by the server: one record
// per room in IndexedDB (the page's list as JSON), written whole or removed.
// The WASM client (outbox.rs) is its only user.
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
      request.onblocked = () => reject(new Error('the outbox is held by another tab'));
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

export async function outboxLoad(room) {
  const db = await database();
  const transaction = db.transaction(STORE, 'readonly');
  const request = transaction.objectStore(STORE).get(room);
  await finished(transaction);
  return typeof request.result === 'string' ? request.result : null;
}

export async function outboxSave(room, record) {
  const db = await database();
  const transaction = db.transaction(STORE, 'readwrite');
  const store = transaction.objectStore(STORE);
  if (record == null) {
    store.delete(room);
  } else {
    store.put(record, room);
  }
  await finished(transaction);
}
