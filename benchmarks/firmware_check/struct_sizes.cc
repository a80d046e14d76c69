#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/recording_micro_allocator.h"
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/micro_allocation_info.h"
#include <cstdio>
using namespace tflite;
#define S(x) sizeof(x)
extern "C" const unsigned g_sizes[] = {
 S(TfLiteEvalTensor), S(TfLiteTensor), S(TfLiteAffineQuantization), S(TfLiteNode), S(NodeAndRegistration),
 S(SubgraphAllocations), S(ScratchBufferHandle), S(internal::ScratchBufferRequest), S(SingleArenaBufferAllocator),
 S(MicroAllocator), S(GreedyMemoryPlanner), S(RecordingMicroAllocator), S(RecordingSingleArenaBufferAllocator),
 S(AllocationInfo), S(TfLiteIntArray), S(void*), alignof(TfLiteEvalTensor), alignof(TfLiteTensor), alignof(NodeAndRegistration)};
#ifdef HOST
int main(){ for (unsigned i=0;i<sizeof(g_sizes)/4;i++) printf("%u ", g_sizes[i]); printf("\n"); }
#endif
