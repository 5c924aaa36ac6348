// talkinghead-nb for SillyTavern: shows the live avatar of a talkinghead-nb server, loads each character's
// talkinghead.png into it, sets its emotion from every character message, moves its mouth while a reply streams
// and, if asked, speaks replies with the server's eSpeak voice.
//
// Plain JavaScript, no build step, no imports: it uses only what SillyTavern gives every extension through
// SillyTavern.getContext() (eventSource, eventTypes, extensionSettings, saveSettingsDebounced, chat, characters,
// characterId, groupId, name2), as in SillyTavern 1.12 and later.
//
// Security: the API key goes only to the server URL the user typed (serverFetch below); SillyTavern's own files
// (the sprite) are fetched without it, and a server URL on SillyTavern's own origin is refused.

const SETTINGS_KEY = 'talkinghead_nb';
const ID = 'talkinghead_nb';
const DEFAULTS = Object.freeze({
    enabled: false,
    serverUrl: 'http://127.0.0.1:5100',
    apiKey: '',
    placement: 'panel', // 'panel' (ours, movable) or 'sprite' (in place of the expression sprite)
    emotions: true,
    speak: false,
    voice: 'en-us',
    speechDelay: 0.25, // seconds from the server's answer to the mouth and the sound (time to fetch and decode)
    panel: null, // {left, top} of the movable panel, in pixels
});
// SillyTavern 1.12.6's event names, used where a context lacks eventTypes.
const EVENT_NAMES = Object.freeze({
    CHAT_CHANGED: 'chat_id_changed',
    MESSAGE_RECEIVED: 'message_received',
    CHARACTER_MESSAGE_RENDERED: 'character_message_rendered',
    STREAM_TOKEN_RECEIVED: 'stream_token_received',
    GENERATION_ENDED: 'generation_ended',
    GENERATION_STOPPED: 'generation_stopped',
});
const MAX_CLASSIFY_CHARS = 1000;
const MAX_SPEAK_CHARS = 5000;

class ServerError extends Error {
    constructor(message, status) {
        super(message);
        this.status = status;
    }
}

const state = {
    character: null, // the sprite folder whose talkinghead.png the server shows
    loaded: false,
    talking: false,
    classify: 'unknown', // 'ok', or 'missing' on a server without /api/classify
    handled: new Set(), // messages already classified ("index:text")
    chatSeq: 0, // bumped on every chat change: work for an older chat stops
    queue: Promise.resolve(), // loads and classifications, in event order
    talkQueue: Promise.resolve(), // start/stop talking, in event order
    audio: null,
};

const context = () => globalThis.SillyTavern.getContext();

/** The extension's settings, completed with the defaults. */
function settings() {
    const all = context().extensionSettings;
    all[SETTINGS_KEY] = { ...DEFAULTS, ...(all[SETTINGS_KEY] || {}) };
    return all[SETTINGS_KEY];
}

function save(changes) {
    Object.assign(settings(), changes);
    context().saveSettingsDebounced();
}

function $(id) {
    return document.getElementById(`${ID}_${id}`);
}

function setStatus(text, problem = false) {
    const element = $('status');
    if (element) {
        element.textContent = text;
        element.classList.toggle('problem', problem);
    }
    if (problem) console.warn(`talkinghead-nb: ${text}`);
}

function setState(name, value) {
    const root = $('settings');
    if (root) root.dataset[name] = String(value);
}

// ---- our server ------------------------------------------------------------------------------------------------

/** The server's base URL (no trailing slash), checked: http(s), and not SillyTavern's own origin. */
function serverBase() {
    const typed = String(settings().serverUrl || '').trim();
    let url;
    try {
        url = new URL(typed);
    } catch {
        throw new ServerError(`the server URL ${JSON.stringify(typed)} is not a URL (e.g. ${DEFAULTS.serverUrl})`, 0);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new ServerError('the server URL must start with http:// or https://', 0);
    }
    if (url.origin === globalThis.location.origin) {
        throw new ServerError('the server URL is SillyTavern\'s own address: enter the talkinghead-nb server\'s', 0);
    }
    url.search = '';
    url.hash = '';
    return url.href.replace(/\/+$/, '');
}

/** A request to our server: the only place the API key is sent. `path` starts with /api/. */
async function serverFetch(path, { method = 'GET', json = undefined, body = undefined } = {}) {
    const base = serverBase();
    const url = new URL(base + path);
    if (url.origin !== new URL(base).origin) throw new ServerError(`refused to send the key to ${url.origin}`, 0);
    const headers = {};
    const key = String(settings().apiKey || '').trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (json !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(json);
    }
    let response;
    try {
        response = await fetch(url, { method, headers, body, credentials: 'omit', cache: 'no-store' });
    } catch (error) {
        throw new ServerError(`cannot reach the talkinghead-nb server at ${base} (is it running? ${error.message})`, 0);
    }
    if (!response.ok) {
        let detail = '';
        try {
            const answer = await response.json();
            detail = answer.error || answer.detail || '';
        } catch { /* not JSON */ }
        if (typeof detail !== 'string') detail = JSON.stringify(detail);
        const hint = response.status === 401 ? ' (check the API key)' : '';
        throw new ServerError(`${method} ${path}: ${response.status} ${detail}${hint}`.trim(), response.status);
    }
    return response;
}

function feedUrl() {
    return `${serverBase()}/api/talkinghead/result_feed`;
}

// ---- the avatar ------------------------------------------------------------------------------------------------

/** The <img> showing the feed (created once; moved between our panel and the expression holder). */
function feedImage() {
    let img = $('feed');
    if (!img) {
        img = document.createElement('img');
        img.id = `${ID}_feed`;
        img.className = 'talkinghead-nb-feed';
        img.alt = '';
        img.decoding = 'async';
    }
    return img;
}

function panel() {
    let element = $('panel');
    if (element) return element;
    element = document.createElement('div');
    element.id = `${ID}_panel`;
    element.className = 'talkinghead-nb-panel talkinghead-nb-hidden';
    const grip = document.createElement('div');
    grip.className = 'talkinghead-nb-grip';
    grip.textContent = '⠿⠿⠿';
    grip.title = 'drag to move';
    element.append(grip);
    document.body.append(element);
    const position = settings().panel;
    if (position) place(element, position.left, position.top);
    makeDraggable(element, grip);
    return element;
}

function place(element, left, top) {
    const maxLeft = Math.max(0, window.innerWidth - 40);
    const maxTop = Math.max(0, window.innerHeight - 40);
    element.style.left = `${Math.min(Math.max(0, left), maxLeft)}px`;
    element.style.top = `${Math.min(Math.max(0, top), maxTop)}px`;
    element.style.right = 'auto';
    element.style.bottom = 'auto';
}

function makeDraggable(element, grip) {
    grip.addEventListener('pointerdown', (down) => {
        down.preventDefault();
        const box = element.getBoundingClientRect();
        const dx = down.clientX - box.left;
        const dy = down.clientY - box.top;
        grip.setPointerCapture(down.pointerId);
        const move = (event) => place(element, event.clientX - dx, event.clientY - dy);
        const up = () => {
            grip.removeEventListener('pointermove', move);
            grip.removeEventListener('pointerup', up);
            grip.removeEventListener('pointercancel', up);
            save({ panel: { left: parseFloat(element.style.left), top: parseFloat(element.style.top) } });
        };
        grip.addEventListener('pointermove', move);
        grip.addEventListener('pointerup', up);
        grip.addEventListener('pointercancel', up);
    });
}

/** Shows the feed where the settings say; in place of the sprite needs SillyTavern's #expression-holder. */
function showAvatar() {
    const img = feedImage();
    const holder = document.getElementById('expression-holder');
    const sprite = document.getElementById('expression-image');
    let where = settings().placement;
    if (where === 'sprite' && !holder) {
        where = 'panel';
        setStatus('no expression sprite on this page (is the Character Expressions extension on?): showing the '
            + 'avatar in a panel');
    }
    if (where === 'sprite') {
        panel().classList.add('talkinghead-nb-hidden');
        sprite?.classList.add('talkinghead-nb-hidden');
        if (img.parentElement !== holder) holder.append(img);
        holder.style.display = '';
    } else {
        sprite?.classList.remove('talkinghead-nb-hidden');
        const box = panel();
        if (img.parentElement !== box) box.append(img);
        box.classList.remove('talkinghead-nb-hidden');
    }
    const src = feedUrl();
    if (img.getAttribute('src') !== src) img.src = src;
    img.dataset.placement = where;
}

/** Hides the feed and ends its stream (an <img> without src closes the connection). */
function hideAvatar() {
    const img = $('feed');
    if (img) {
        img.removeAttribute('src');
        img.remove();
    }
    $('panel')?.classList.add('talkinghead-nb-hidden');
    document.getElementById('expression-image')?.classList.remove('talkinghead-nb-hidden');
}

// ---- what happens in the chat ----------------------------------------------------------------------------------

/** The sprite folder of the open solo chat's character (SillyTavern's rule: its name, unless the Character
 * Expressions extension has an override for its avatar); null without one, and in group chats. */
function spriteFolder() {
    const ctx = context();
    if (ctx.groupId) return null;
    if (ctx.characterId === undefined || ctx.characterId === null || ctx.characterId === '') return null;
    const character = ctx.characters?.[ctx.characterId];
    if (!character) return null;
    const avatar = String(character.avatar || '').replace(/\.[^.]*$/, '');
    const override = (ctx.extensionSettings.expressionOverrides || []).find((o) => o.name === avatar && o.path);
    return override ? override.path : (character.name || ctx.name2);
}

function enqueue(task) {
    const run = state.queue.then(task);
    state.queue = run.catch((error) => setStatus(error.message, true));
    return state.queue;
}

/** Loads the open chat's character into the server and shows it; unloads when there is none. */
async function loadCharacter(seq) {
    if (!settings().enabled || seq !== state.chatSeq) return;
    const folder = spriteFolder();
    if (!folder) {
        await unload(context().groupId ? 'group chats are not supported yet: avatar paused'
            : 'no character chat open: avatar paused');
        return;
    }
    if (folder === state.character && state.loaded) {
        showAvatar();
        return;
    }
    setStatus(`loading ${folder}…`);
    setState('state', 'loading');
    // SillyTavern's own file: same origin, no key.
    const sprite = await fetch(`/characters/${encodeURIComponent(folder)}/talkinghead.png`,
        { credentials: 'same-origin', cache: 'no-cache' });
    if (seq !== state.chatSeq) return;
    if (!sprite.ok) {
        await unload(`${folder} has no talkinghead.png: upload a 512×512 PNG with transparency as its sprite `
            + '"talkinghead" (Character Expressions), or put it in data/<user>/characters/'
            + `${folder}/talkinghead.png`, true);
        return;
    }
    const form = new FormData();
    form.append('file', new File([await sprite.blob()], 'talkinghead.png', { type: 'image/png' }));
    await serverFetch('/api/talkinghead/load', { method: 'POST', body: form });
    if (seq !== state.chatSeq) return;
    state.character = folder;
    state.loaded = true;
    showAvatar();
    setState('state', 'showing');
    setState('character', folder);
    setStatus(`showing ${folder}`);
}

/** Pauses the server's animation and hides the avatar. */
async function unload(why, problem = false) {
    const wasLoaded = state.loaded;
    state.loaded = false;
    state.character = null;
    stopAudio();
    hideAvatar();
    setState('state', 'off');
    setState('character', '');
    setStatus(why, problem);
    if (wasLoaded) await serverFetch('/api/talkinghead/unload');
}

function onChatChanged() {
    state.chatSeq += 1;
    state.handled.clear();
    state.talking = false;
    stopAudio();
    if (state.classify === 'missing') state.classify = 'unknown'; // the server may have been updated
    const seq = state.chatSeq;
    enqueue(() => loadCharacter(seq));
}

/** Markup out, whitespace folded: what a reader would hear. */
function plainText(text) {
    return String(text || '')
        .replace(/<[^>]*>/g, ' ')
        .replace(/[*_~`#>|]+/g, ' ')
        .replace(/\s+/g, ' ')
        .trim();
}

function onCharacterMessage(messageId) {
    stopTalking();
    if (!settings().enabled) return;
    const ctx = context();
    const index = Number(messageId);
    const message = ctx.chat?.[index];
    if (!message || message.is_user || message.is_system) return;
    const text = plainText(message.mes);
    const key = `${index}:${text}`;
    if (!text || text === '...' || state.handled.has(key)) return;
    state.handled.add(key);
    const seq = state.chatSeq;
    enqueue(async () => {
        if (seq !== state.chatSeq || !state.loaded) return;
        const { emotions, speak } = settings();
        const speech = speak ? startSpeaking(text, seq) : null;
        if (emotions) await showEmotionOf(text, seq);
        await speech;
    });
}

/** The best label our server's /api/classify gives the text, or null (and a note) on a server without it. */
async function classify(text) {
    if (state.classify === 'missing') return null;
    let response;
    try {
        response = await serverFetch('/api/classify', { method: 'POST', json: { text: text.slice(-MAX_CLASSIFY_CHARS) } });
    } catch (error) {
        if (error.status === 404 || error.status === 405) {
            state.classify = 'missing';
            setState('classify', 'missing');
            setStatus('this talkinghead-nb server has no /api/classify (update it): the avatar keeps its emotion; '
                + 'everything else works', true);
            return null;
        }
        throw error;
    }
    state.classify = 'ok';
    setState('classify', 'ok');
    const labels = (await response.json()).classification;
    if (!Array.isArray(labels) || labels.length === 0) return null;
    const best = labels.reduce((a, b) => (Number(b.score) > Number(a.score) ? b : a));
    return typeof best.label === 'string' ? best.label : null;
}

async function showEmotionOf(text, seq) {
    const label = await classify(text);
    if (!label || seq !== state.chatSeq) return;
    await serverFetch('/api/talkinghead/set_emotion', { method: 'POST', json: { emotion_name: label } });
    const shown = $('emotion');
    if (shown) shown.textContent = label;
    setState('emotion', label);
}

/** Talking while a reply streams: one start per reply, one stop at its end, in order. */
function talk(on) {
    if (state.talking === on) return;
    state.talking = on;
    setState('talking', on);
    const verb = on ? 'start_talking' : 'stop_talking';
    state.talkQueue = state.talkQueue
        .then(() => serverFetch(`/api/talkinghead/${verb}`))
        .catch((error) => setStatus(error.message, true));
}

function onStreamToken() {
    if (settings().enabled && state.loaded && !state.audio) talk(true);
}

function stopTalking() {
    if (state.talking) talk(false);
}

// ---- speech ----------------------------------------------------------------------------------------------------

let audioOut = null;

/** The page's AudioContext, created and resumed on a user gesture (browsers allow sound only after one). */
function audioContext() {
    if (!audioOut) audioOut = new AudioContext();
    if (audioOut.state === 'suspended') audioOut.resume().catch(() => { /* not allowed yet */ });
    return audioOut;
}

/** Asks the server to say the text: it answers the WAV and moves the mouth `speechDelay` seconds after answering.
 * The sound is scheduled (Web Audio, sample-exact) for that same moment, less the output's latency, so the sound
 * and the mouth start together if the WAV is decoded within the delay (measured: tens of ms; see the tests). */
async function startSpeaking(text, seq) {
    stopAudio();
    const { voice, speechDelay } = settings();
    const delay = Math.min(Math.max(Number(speechDelay) || 0, 0), 2);
    const out = audioContext();
    const response = await serverFetch('/api/talkinghead/speak', {
        method: 'POST', json: { text: text.slice(0, MAX_SPEAK_CHARS), voice: voice || 'en-us', delay },
    });
    const answered = performance.now();
    const buffer = await out.decodeAudioData(await response.arrayBuffer());
    if (seq !== state.chatSeq || !settings().enabled) return;
    if (out.state !== 'running') {
        setState('audio', 'blocked');
        setStatus('the browser does not allow sound yet: click the page once, then replies are spoken', true);
        return;
    }
    const source = out.createBufferSource();
    source.buffer = buffer;
    source.connect(out.destination);
    const wait = (answered + delay * 1000 - performance.now()) / 1000 - (out.outputLatency || out.baseLatency || 0);
    source.start(out.currentTime + Math.max(0, wait));
    const playing = { stop: () => source.stop() };
    state.audio = playing;
    setState('audio', 'playing');
    setState('ready', ((performance.now() - answered) / 1000).toFixed(3)); // answer to scheduled
    setState('late', Math.max(0, -wait).toFixed(3)); // how much later than the mouth the sound starts
    source.addEventListener('ended', () => {
        if (state.audio !== playing) return;
        state.audio = null;
        setState('audio', 'ended');
    });
}

function stopAudio() {
    const audio = state.audio;
    if (!audio) return;
    state.audio = null;
    try {
        audio.stop();
    } catch { /* not started */ }
    setState('audio', 'stopped');
    if (state.loaded) serverFetch('/api/talkinghead/stop_speaking').catch(() => { /* an older server */ });
}

// ---- settings panel --------------------------------------------------------------------------------------------

async function renderSettings() {
    const html = await (await fetch(new URL('settings.html', import.meta.url))).text();
    const container = document.getElementById('extensions_settings2')
        || document.getElementById('extensions_settings');
    if (!container) throw new Error('no #extensions_settings on this page');
    const template = document.createElement('template');
    template.innerHTML = html;
    container.append(template.content);

    const s = settings();
    $('enabled').checked = s.enabled;
    $('url').value = s.serverUrl;
    $('key').value = s.apiKey;
    $('placement').value = s.placement;
    $('emotions').checked = s.emotions;
    $('speak').checked = s.speak;
    $('voice').value = s.voice;
    $('delay').value = String(s.speechDelay);

    const reconnect = () => {
        state.loaded = false;
        state.character = null;
        state.classify = 'unknown';
        hideAvatar();
        if (settings().enabled) onChatChanged();
    };
    $('enabled').addEventListener('change', (event) => {
        save({ enabled: event.target.checked });
        if (event.target.checked) {
            onChatChanged();
        } else {
            state.chatSeq += 1;
            stopTalking();
            enqueue(() => unload('switched off'));
        }
    });
    $('url').addEventListener('change', (event) => {
        save({ serverUrl: event.target.value.trim() || DEFAULTS.serverUrl });
        reconnect();
    });
    $('key').addEventListener('change', (event) => {
        save({ apiKey: event.target.value.trim() });
        reconnect();
    });
    $('placement').addEventListener('change', (event) => {
        save({ placement: event.target.value });
        if (state.loaded) showAvatar();
    });
    $('emotions').addEventListener('change', (event) => save({ emotions: event.target.checked }));
    $('speak').addEventListener('change', (event) => {
        save({ speak: event.target.checked });
        if (event.target.checked) audioContext(); // a click: sound is allowed from now on
        else stopAudio();
    });
    $('voice').addEventListener('change', (event) => save({ voice: event.target.value.trim() || DEFAULTS.voice }));
    $('delay').addEventListener('change', (event) => {
        const value = Number(event.target.value);
        save({ speechDelay: Number.isFinite(value) ? Math.min(Math.max(value, 0), 2) : DEFAULTS.speechDelay });
    });
    $('test').addEventListener('click', async () => {
        try {
            const answer = await (await serverFetch('/api/talkinghead/emotions')).json();
            setStatus(`connected: ${answer.emotions.filter((name) => name !== 'zero').length} emotions, now ${answer.current}`);
        } catch (error) {
            setStatus(error.message, true);
        }
    });
}

async function init() {
    const ctx = context();
    settings();
    await renderSettings();
    const names = { ...EVENT_NAMES, ...(ctx.eventTypes || ctx.event_types || {}) };
    const on = (name, handler) => ctx.eventSource.on(names[name], (...args) => {
        try {
            handler(...args);
        } catch (error) {
            setStatus(error.message, true);
        }
    });
    on('CHAT_CHANGED', onChatChanged);
    on('MESSAGE_RECEIVED', onCharacterMessage);
    on('CHARACTER_MESSAGE_RENDERED', onCharacterMessage); // the same message: handled once
    on('STREAM_TOKEN_RECEIVED', onStreamToken);
    on('GENERATION_ENDED', stopTalking);
    on('GENERATION_STOPPED', stopTalking);
    setStatus(settings().enabled ? '' : 'off: tick "Show the live avatar"');
    document.addEventListener('pointerdown', () => {
        if (settings().speak) audioContext();
    }, { capture: true });
    if (settings().enabled) onChatChanged(); // a chat may be open already
}

if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', () => init().catch((e) => console.error('talkinghead-nb', e)));
} else {
    init().catch((error) => console.error('talkinghead-nb', error));
}
