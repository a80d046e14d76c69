/* edgeprune validation harness for a tree model exported as C (edgeprune/trees/cexport.py):
 * answers the framed serial protocol of edgeprune/protocol.py (edgeprune_protocol.h), as
 * firmware_src/validation_harness.cc does for TFLite Micro, so that a host can run the
 * validation split on the board.
 *
 * SET_INPUT fills the float32 feature vector (little-endian, as the host sends it); INVOKE
 * runs the model's glue (quantizing first for an int16 export) and reports the cycles the
 * transport's counter saw; GET_OUTPUT returns the prediction's bytes: the int32 class index
 * of a classifier, the float32 (or float64, double leaves) value of a regressor. The model's
 * identity is the CRC-32 and length of its generated <name>_model.c, so the host can tell
 * that the board runs the export it holds; its "arena" is the input and output bytes (a tree
 * model allocates nothing else but its stack). The board feeds every received byte to
 * ep_tree_receive(). No heap; one frame buffer in and one out. */
#ifndef EDGEPRUNE_TREE_HARNESS_H_
#define EDGEPRUNE_TREE_HARNESS_H_

#include <stddef.h>
#include <stdint.h>

#include "edgeprune_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EP_TREE_FRAME_BYTES (2 + 3 + EP_MAX_PAYLOAD + 4)
#define EP_TREE_MAX_FEATURES 1024

typedef struct {
    void (*write)(void *context, const uint8_t *data, size_t size);
    uint64_t (*cycles)(void *context);
    void *context;
} ep_tree_transport;

/* What the generated <name>_harness_glue.c describes: the model and how to run it. */
typedef struct {
    uint32_t model_crc32; /* CRC-32 of <name>_model.c's text */
    uint32_t model_bytes; /* its length */
    uint32_t n_features;
    uint32_t output_bytes;
    void (*invoke)(const float *features, uint8_t *output);
} ep_tree_model;

typedef struct {
    const ep_tree_model *model;
    uint32_t clock_hz;
    ep_tree_transport transport;
    float features[EP_TREE_MAX_FEATURES];
    uint8_t output[8];
    uint8_t frame[EP_TREE_FRAME_BYTES];
    size_t filled;
    uint8_t reply[EP_TREE_FRAME_BYTES];
} ep_tree_harness;

uint32_t ep_tree_crc32(const uint8_t *data, size_t size, uint32_t crc);
void ep_tree_init(ep_tree_harness *h, const ep_tree_model *model, uint32_t clock_hz,
                  ep_tree_transport transport);
void ep_tree_receive(ep_tree_harness *h, uint8_t byte);

#ifdef __cplusplus
}
#endif

#endif /* EDGEPRUNE_TREE_HARNESS_H_ */
