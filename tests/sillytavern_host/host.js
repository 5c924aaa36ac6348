// Stands in for SillyTavern (1.12.6 and later) in the tests: window.SillyTavern.getContext() with the members our
// extension uses, an event source whose emit() awaits each listener in turn (as SillyTavern's does), SillyTavern's
// event names, and window.host, which plays what SillyTavern does when a user opens a chat, a character speaks or a
// reply streams. The extension is loaded the way SillyTavern loads a third-party one: manifest.json, then its css
// and its js as a module, from /scripts/extensions/third-party/<folder>/.

class EventSource {
    constructor() {
        this.listeners = new Map();
    }

    on(name, listener) {
        if (!this.listeners.has(name)) this.listeners.set(name, []);
        this.listeners.get(name).push(listener);
    }

    async emit(name, ...args) {
        for (const listener of this.listeners.get(name) || []) {
            await listener(...args);
        }
    }
}

const eventTypes = Object.freeze({
    APP_READY: 'app_ready',
    MESSAGE_SENT: 'message_sent',
    MESSAGE_RECEIVED: 'message_received',
    CHAT_CHANGED: 'chat_id_changed',
    GENERATION_STARTED: 'generation_started',
    GENERATION_STOPPED: 'generation_stopped',
    GENERATION_ENDED: 'generation_ended',
    USER_MESSAGE_RENDERED: 'user_message_rendered',
    CHARACTER_MESSAGE_RENDERED: 'character_message_rendered',
    STREAM_TOKEN_RECEIVED: 'stream_token_received',
});

const params = new URLSearchParams(location.search);
const st = {
    chat: [],
    characters: JSON.parse(params.get('characters') || '[]'), // [{name, avatar}]
    characterId: undefined,
    groupId: null,
    name1: 'User',
    name2: '',
    extensionSettings: JSON.parse(params.get('settings') || '{}'),
    saves: 0,
};
const eventSource = new EventSource();

window.SillyTavern = {
    getContext() {
        return {
            chat: st.chat,
            characters: st.characters,
            characterId: st.characterId,
            groupId: st.groupId,
            name1: st.name1,
            name2: st.name2,
            eventSource,
            eventTypes,
            extensionSettings: st.extensionSettings,
            saveSettingsDebounced: () => { st.saves += 1; },
        };
    },
};

function message(text, isUser = false) {
    return { name: isUser ? st.name1 : st.name2, is_user: isUser, is_system: false, mes: text, send_date: Date.now() };
}

window.host = {
    st,
    /** Open the chat of characters[index] (a string id, as SillyTavern's this_chid), with its greeting if given. */
    async openChat(index, greeting = null) {
        st.characterId = String(index);
        st.groupId = null;
        st.name2 = st.characters[index].name;
        st.chat.length = 0;
        await eventSource.emit(eventTypes.CHAT_CHANGED, `${st.name2} - chat`);
        if (greeting !== null) {
            st.chat.push(message(greeting));
            await eventSource.emit(eventTypes.MESSAGE_RECEIVED, st.chat.length - 1);
            await eventSource.emit(eventTypes.CHARACTER_MESSAGE_RENDERED, st.chat.length - 1);
        }
    },
    /** Close the chat (SillyTavern's welcome screen): no character selected. */
    async closeChat() {
        st.characterId = undefined;
        st.name2 = '';
        st.chat.length = 0;
        await eventSource.emit(eventTypes.CHAT_CHANGED, undefined);
    },
    async userSays(text) {
        st.chat.push(message(text, true));
        await eventSource.emit(eventTypes.MESSAGE_SENT, st.chat.length - 1);
        await eventSource.emit(eventTypes.USER_MESSAGE_RENDERED, st.chat.length - 1);
    },
    /** A whole character message, as /sendas or a non-streamed reply adds it. */
    async characterSays(text) {
        st.chat.push(message(text));
        await eventSource.emit(eventTypes.MESSAGE_RECEIVED, st.chat.length - 1);
        await eventSource.emit(eventTypes.CHARACTER_MESSAGE_RENDERED, st.chat.length - 1);
    },
    /** The start of a streamed reply: GENERATION_STARTED, then one STREAM_TOKEN_RECEIVED per token (the text so far). */
    async streamTokens(tokens) {
        await eventSource.emit(eventTypes.GENERATION_STARTED, 'normal', {}, false);
        let text = '';
        for (const token of tokens) {
            text += token;
            await eventSource.emit(eventTypes.STREAM_TOKEN_RECEIVED, text);
        }
        return text;
    },
    /** The end of a streamed reply: the message is saved (MESSAGE_RECEIVED, rendered), then GENERATION_ENDED. */
    async endStream(text) {
        await this.characterSays(text);
        await eventSource.emit(eventTypes.GENERATION_ENDED, st.chat.length);
    },
    /** Load a third-party extension as SillyTavern does. */
    async loadExtension(folder) {
        const base = `/scripts/extensions/third-party/${folder}`;
        const manifest = await (await fetch(`${base}/manifest.json`)).json();
        const loaded = (element) => new Promise((resolve, reject) => {
            element.onload = resolve;
            element.onerror = reject;
        });
        if (manifest.css) {
            const link = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: `${base}/${manifest.css}` });
            const done = loaded(link);
            document.head.append(link);
            await done;
        }
        const script = Object.assign(document.createElement('script'), { type: 'module', src: `${base}/${manifest.js}` });
        script.id = `third-party/${folder}`;
        const done = loaded(script);
        document.body.append(script);
        await done;
        return manifest;
    },
};
window.hostReady = true;
