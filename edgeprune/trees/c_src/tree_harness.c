/* edgeprune validation harness for tree models: see tree_harness.h. */
#include "tree_harness.h"

#include <string.h>

static uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint8_t *put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

uint32_t ep_tree_crc32(const uint8_t *data, size_t size, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void ep_tree_init(ep_tree_harness *h, const ep_tree_model *model, uint32_t clock_hz,
                  ep_tree_transport transport) {
    memset(h, 0, sizeof *h);
    h->model = model;
    h->clock_hz = clock_hz;
    h->transport = transport;
}

static void reply(ep_tree_harness *h, uint8_t type, const uint8_t *payload, uint16_t size) {
    uint8_t *p = h->reply;
    *p++ = EP_SYNC0;
    *p++ = EP_SYNC1;
    p = put_u16(p, size);
    *p++ = type;
    memcpy(p, payload, size);
    p += size;
    p = put_u32(p, ep_tree_crc32(h->reply + 2, 3u + size, 0));
    h->transport.write(h->transport.context, h->reply, (size_t)(p - h->reply));
}

static void error(ep_tree_harness *h, uint8_t code, const char *message) {
    uint8_t body[64];
    size_t n = strlen(message);
    if (n > sizeof body - 1) n = sizeof body - 1;
    body[0] = code;
    memcpy(body + 1, message, n);
    reply(h, EP_ERROR, body, (uint16_t)(n + 1));
}

static void hello(ep_tree_harness *h) {
    uint8_t body[EP_IDENTITY_BYTES];
    uint8_t *p = body;
    *p++ = EP_VERSION;
    p = put_u32(p, h->model->model_crc32);
    p = put_u32(p, h->model->model_bytes);
    /* arena bytes: a tree model has no arena; its working memory is the input and output */
    p = put_u32(p, h->model->n_features * (uint32_t)sizeof(float) + h->model->output_bytes);
    p = put_u32(p, h->model->n_features * (uint32_t)sizeof(float));
    p = put_u32(p, h->model->output_bytes);
    p = put_u32(p, h->clock_hz);
    p = put_u16(p, EP_MAX_PAYLOAD);
    reply(h, EP_HELLO | EP_REPLY, body, (uint16_t)(p - body));
}

static void handle(ep_tree_harness *h, uint8_t type, const uint8_t *payload, uint16_t size) {
    static uint8_t body[EP_MAX_PAYLOAD];
    const uint32_t in_bytes = h->model->n_features * (uint32_t)sizeof(float);
    const uint32_t out_bytes = h->model->output_bytes;
    if (type == EP_HELLO) {
        hello(h);
    } else if (type == EP_SET_INPUT) {
        if (size < 4) { error(h, EP_ERR_LENGTH, "SET_INPUT needs an offset"); return; }
        const uint32_t offset = read_u32(payload), count = size - 4u;
        if (offset > in_bytes || count > in_bytes - offset)
            { error(h, EP_ERR_RANGE, "input offset or count out of range"); return; }
        memcpy((uint8_t *)h->features + offset, payload + 4, count);
        body[0] = EP_STATUS_OK;
        reply(h, EP_SET_INPUT | EP_REPLY, body, 1);
    } else if (type == EP_INVOKE) {
        const uint64_t start = h->transport.cycles(h->transport.context);
        h->model->invoke(h->features, h->output);
        const uint64_t cycles = h->transport.cycles(h->transport.context) - start;
        body[0] = EP_STATUS_OK;
        put_u64(body + 1, cycles);
        reply(h, EP_INVOKE | EP_REPLY, body, EP_INVOKED_BYTES);
    } else if (type == EP_GET_OUTPUT) {
        if (size != 6) {
            error(h, EP_ERR_LENGTH, "GET_OUTPUT needs an offset and a count");
            return;
        }
        const uint32_t offset = read_u32(payload);
        const uint16_t count = (uint16_t)(payload[4] | (payload[5] << 8));
        if (count > EP_MAX_PAYLOAD - 1 || offset > out_bytes || count > out_bytes - offset)
            { error(h, EP_ERR_RANGE, "output offset or count out of range"); return; }
        body[0] = EP_STATUS_OK;
        memcpy(body + 1, h->output + offset, count);
        reply(h, EP_GET_OUTPUT | EP_REPLY, body, (uint16_t)(count + 1));
    } else {
        error(h, EP_ERR_TYPE, "unknown message type");
    }
}

void ep_tree_receive(ep_tree_harness *h, uint8_t byte) {
    if (h->filled == 0 && byte != EP_SYNC0) return;
    if (h->filled == 1 && byte != EP_SYNC1) {
        h->filled = byte == EP_SYNC0 ? 1 : 0;
        return;
    }
    h->frame[h->filled++] = byte;
    if (h->filled < 5) return;
    const uint16_t size = (uint16_t)(h->frame[2] | (h->frame[3] << 8));
    if (size > EP_MAX_PAYLOAD) {
        h->filled = 0;
        error(h, EP_ERR_LENGTH, "frame longer than EP_MAX_PAYLOAD");
        return;
    }
    if (h->filled < 5u + size + 4u) return;
    h->filled = 0;
    if (ep_tree_crc32(h->frame + 2, 3u + size, 0) != read_u32(h->frame + 5 + size)) {
        error(h, EP_ERR_CRC, "frame CRC mismatch; resend");
        return;
    }
    handle(h, h->frame[4], h->frame + 5, size);
}
