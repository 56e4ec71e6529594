"""Exploring a collection: more like this (relevance feedback), duplicates, and a 2-D map.

Plain functions over whole-image vectors and stored records; the executors only call them.
"""
