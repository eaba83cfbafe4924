/*
 * Private to lib/av: opening the video decoder — stream choice, decoder and
 * thread settings, the get_buffer2 bridge hook-up (bridge.c), and the size
 * of the decoder pool from the buffers the decoder may hold.
 */
#ifndef FRAMEPOOL_AV_DECODER_H
#define FRAMEPOOL_AV_DECODER_H

#include "avpriv.h"
#include "framepool/reader.h"

/* Picks the video stream of r->ic, opens its decoder with framepool buffers
 * (DR1 decoders), sizes the decoder pool and sets up the decode state.
 * Returns 0 or an error (message set in the reader). */
int fp__decoder_open(fp_reader *r);

#endif
