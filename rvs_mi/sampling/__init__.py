"""rvs_mi.sampling"""
